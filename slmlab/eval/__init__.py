"""The main job: evaluate a model on a benchmark, end to end, resumable."""

from slmlab.eval.config import EvalConfig, load_config, make_config
from slmlab.eval.job import EvalResult, run_eval

__all__ = ["EvalConfig", "EvalResult", "load_config", "make_config", "run_eval"]
