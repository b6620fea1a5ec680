import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Tests read MBPP/GSM8K from SLMLAB_DATA; on the project's machines they sit beside the checkout.
if "SLMLAB_DATA" not in os.environ and (REPO.parent / "shared" / "datasets").is_dir():
    os.environ["SLMLAB_DATA"] = str(REPO.parent / "shared" / "datasets")


@pytest.fixture(scope="session")
def data_dir() -> str:
    path = os.environ.get("SLMLAB_DATA")
    if not path or not Path(path, "mbpp", "mbpp.jsonl").is_file():
        pytest.skip("SLMLAB_DATA does not point at a folder with mbpp/ and gsm8k/")
    return path
