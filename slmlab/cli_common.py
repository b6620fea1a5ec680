"""What every part of the command line shares: the consoles it prints to. `slmlab.cli` and
`slmlab.cli_train` both import it, and neither imports the other's module for it."""

from __future__ import annotations

import sys

from rich.console import Console

# Tables need room: rich falls back to 80 columns when the output is not a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)
