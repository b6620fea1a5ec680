"""slmlab: a laboratory for small language models on code and math."""

from slmlab import cpu

# Before anything imports torch: OpenMP reads its settings once, when torch loads it (see slmlab.cpu).
cpu.configure()

__version__ = "0.1.0"
