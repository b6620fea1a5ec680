"""Sandboxed execution of model-written programs, and the outcome taxonomy.

    from slmlab.execute import Executor, Program
    with Executor(sandbox="auto") as ex:
        outcomes = ex.run([Program(definitions=code, tests=tests)])

Submodules are imported lazily so that the sandboxed runner, which imports this package, starts fast.
"""

from typing import TYPE_CHECKING

from slmlab.lazy import lazy_exports

_EXPORTS = {
    "Executor": "slmlab.execute.pool",
    "Program": "slmlab.execute.pool",
    "Limits": "slmlab.execute.limits",
    "Outcome": "slmlab.execute.outcome",
    "Status": "slmlab.execute.outcome",
    "select_tier": "slmlab.execute.tiers",
    "detect_tiers": "slmlab.execute.tiers",
}

if TYPE_CHECKING:
    from slmlab.execute.limits import Limits
    from slmlab.execute.outcome import Outcome, Status
    from slmlab.execute.pool import Executor, Program
    from slmlab.execute.tiers import detect as detect_tiers
    from slmlab.execute.tiers import select_tier

__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(_EXPORTS, renames={"detect_tiers": "detect"})
