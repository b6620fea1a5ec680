"""Resource limits for one sandboxed program."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 5.0  # wall clock, as in seed 000
    memory_mb: int = 2048  # address space (RLIMIT_AS)
    max_processes: int = 16  # processes the program may have at once, itself included
    output_bytes: int = 4 * MIB  # per output file (stdout, stderr, files it writes): RLIMIT_FSIZE
    max_open_files: int = 256
    # Parking: a program still running after park_after_s gives its slot to the next sample and goes
    # on beside it, so hung programs do not hold up the pool.
    #   "idle": only programs that are not using the CPU (sleeping, blocked), at their priority: a
    #           time limit is charged less any wait for a CPU (worker.py), so verdicts do not depend
    #           on load;
    #   "all":  CPU-bound ones too, at the lowest CPU priority: much faster with infinite loops, but
    #           a slow, correct program starved by the others can time out (outcomes record cpu_s;
    #           summaries warn);
    #   "off":  every program keeps its slot and priority until it ends.
    park: str = "idle"
    park_after_s: float = 0.5
    keep_output_bytes: int = 4096  # how much of stdout/stderr an outcome keeps

    @property
    def cpu_s(self) -> int:
        """CPU-time limit (RLIMIT_CPU): a second more than the wall clock, for multi-threaded spinners."""
        return math.ceil(self.timeout_s) + 1

    def with_timeout(self, timeout_s: float | None) -> Limits:
        if timeout_s is None or timeout_s == self.timeout_s:
            return self
        return replace(self, timeout_s=timeout_s)

    def to_dict(self) -> dict:
        return dict(vars(self))  # asdict deep-copies: ten times slower, and this runs per sample
