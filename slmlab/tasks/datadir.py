"""Where datasets live: --data-dir, else $SLMLAB_DATA. slmlab never ships copies of them."""

from __future__ import annotations

import os
from pathlib import Path

from slmlab.errors import UserError

ENV_VAR = "SLMLAB_DATA"


def resolve_data_file(relative: str, data_dir: str | os.PathLike | None, dataset: str) -> Path:
    """The path of `relative` inside the data directory, or a UserError saying how to provide it."""
    root = data_dir if data_dir is not None else os.environ.get(ENV_VAR)
    if not root:
        raise UserError(
            f"{dataset} needs a data directory: pass --data-dir DIR or set {ENV_VAR}=DIR "
            f"(a folder holding {relative}; the README's Datasets section says where to get it)"
        )
    path = Path(root).expanduser() / relative
    if not path.is_file():
        source = "--data-dir" if data_dir is not None else ENV_VAR
        raise UserError(f"{dataset}: {path} not found; point {source} at a folder holding {relative} "
                        "(the README's Datasets section says where to get it)")  # fmt: skip
    return path
