"""Only the optional C part of the sandbox (everything else is declared in pyproject.toml).

slmlab/execute/_fastspawn.c forks and hardens the process tier's children in C. `optional`: where it
cannot be built (no C compiler), installing goes on and the sandbox does the same steps in Python.
"""

import sys

from setuptools import Extension, setup

extensions = []
if sys.platform == "linux":
    extensions.append(Extension("slmlab.execute._fastspawn", ["slmlab/execute/_fastspawn.c"], optional=True))
setup(ext_modules=extensions)
