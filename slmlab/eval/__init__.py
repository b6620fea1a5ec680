"""The main job: evaluate a model on a benchmark, end to end, resumable.

Names are imported lazily: validating a config does not load the pipeline (or torch)."""

from typing import TYPE_CHECKING

from slmlab.lazy import lazy_exports

_EXPORTS = {
    "EvalConfig": "slmlab.eval.config",
    "load_config": "slmlab.eval.config",
    "make_config": "slmlab.eval.config",
    "EvalResult": "slmlab.eval.job",
    "run_eval": "slmlab.eval.job",
}

if TYPE_CHECKING:
    from slmlab.eval.config import EvalConfig, load_config, make_config
    from slmlab.eval.job import EvalResult, run_eval

__all__ = ["EvalConfig", "EvalResult", "load_config", "make_config", "run_eval"]  # noqa: F822 (served by __getattr__)
__getattr__ = lazy_exports(_EXPORTS)
