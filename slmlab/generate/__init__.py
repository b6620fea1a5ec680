"""The Generator seam (slmlab.generate.base) and its engines: each backend is one file that
registers itself (hf.py: transformers with slmlab's batched engine, engine.py).

Names are imported lazily: the engine needs torch, settings and stop sequences do not.
"""

from typing import TYPE_CHECKING

from slmlab.lazy import lazy_exports

_EXPORTS = {
    "BACKENDS": "slmlab.generate.backends",
    "BatchGenerator": "slmlab.generate.engine",
    "CAPABILITIES": "slmlab.generate.base",
    "FINISH_REASONS": "slmlab.generate.base",
    "Generation": "slmlab.generate.base",
    "Generator": "slmlab.generate.base",
    "Request": "slmlab.generate.base",
    "open_generator": "slmlab.generate.backends",
    "require": "slmlab.generate.base",
    "SamplingParams": "slmlab.generate.params",
    "sample_seed": "slmlab.generate.params",
    "StopFinder": "slmlab.generate.stops",
    "cut_at_stop": "slmlab.generate.stops",
}

if TYPE_CHECKING:
    from slmlab.generate.backends import BACKENDS, open_generator
    from slmlab.generate.base import CAPABILITIES, FINISH_REASONS, Generation, Generator, Request, require
    from slmlab.generate.engine import BatchGenerator
    from slmlab.generate.params import SamplingParams, sample_seed
    from slmlab.generate.stops import StopFinder, cut_at_stop

__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(_EXPORTS)
