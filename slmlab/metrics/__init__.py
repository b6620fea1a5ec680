"""Metrics that come with their uncertainty: pass@k, confidence intervals, paired run comparison."""

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
]
