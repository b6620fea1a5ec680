"""slmlab: a laboratory for small language models on code and math."""

__version__ = "0.1.0"
