"""Generation: batched sampling with slot refill, stop sequences, per-sample seeds, finish reasons.

Names are imported lazily: the engine needs torch, settings and stop sequences do not.
"""

from typing import TYPE_CHECKING

from slmlab.lazy import lazy_exports

_EXPORTS = {
    "BatchGenerator": "slmlab.generate.engine",
    "FINISH_REASONS": "slmlab.generate.engine",
    "Generation": "slmlab.generate.engine",
    "Request": "slmlab.generate.engine",
    "SamplingParams": "slmlab.generate.params",
    "sample_seed": "slmlab.generate.sampling",
    "StopFinder": "slmlab.generate.stops",
    "cut_at_stop": "slmlab.generate.stops",
    "default_stops": "slmlab.generate.stops",
}

if TYPE_CHECKING:
    from slmlab.generate.engine import FINISH_REASONS, BatchGenerator, Generation, Request
    from slmlab.generate.params import SamplingParams
    from slmlab.generate.sampling import sample_seed
    from slmlab.generate.stops import StopFinder, cut_at_stop, default_stops

__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(_EXPORTS)
