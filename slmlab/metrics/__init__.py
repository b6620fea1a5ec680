"""Metrics that come with their uncertainty: pass@k, confidence intervals, paired run comparison.

Names are imported lazily: reading a math answer does not pay for scipy."""

from typing import TYPE_CHECKING

from slmlab.lazy import lazy_exports

_EXPORTS = {
    "Comparison": "slmlab.metrics.compare",
    "compare_runs": "slmlab.metrics.compare",
    "Rate": "slmlab.metrics.intervals",
    "bootstrap_mean": "slmlab.metrics.intervals",
    "rate": "slmlab.metrics.intervals",
    "resample_means": "slmlab.metrics.intervals",
    "wilson": "slmlab.metrics.intervals",
    "z_value": "slmlab.metrics.intervals",
    "PassAtK": "slmlab.metrics.passk",
    "pass_at_k": "slmlab.metrics.passk",
    "pass_at_k_per_task": "slmlab.metrics.passk",
    "pass_at_k_summary": "slmlab.metrics.passk",
}

if TYPE_CHECKING:
    from slmlab.metrics.compare import Comparison, compare_runs
    from slmlab.metrics.intervals import Rate, bootstrap_mean, rate, resample_means, wilson, z_value
    from slmlab.metrics.passk import PassAtK, pass_at_k, pass_at_k_per_task, pass_at_k_summary

__all__ = [
    "Comparison",
    "PassAtK",
    "Rate",
    "bootstrap_mean",
    "compare_runs",
    "pass_at_k",
    "pass_at_k_per_task",
    "pass_at_k_summary",
    "rate",
    "resample_means",
    "wilson",
    "z_value",
]  # noqa: F822 (served by __getattr__)
__getattr__ = lazy_exports(_EXPORTS)
