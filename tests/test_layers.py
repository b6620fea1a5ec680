"""The import-layer contract of DESIGN.md ("no import cycles; layers point down only"), written in
pyproject.toml's [tool.importlinter] and checked here with import-linter (a dev dependency)."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

import slmlab

ROOT = Path(__file__).resolve().parent.parent


def _contracts() -> list[dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]


def test_no_module_imports_upward_or_in_a_circle(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report  # the report names each import that goes up or closes a circle
    assert "2 kept, 0 broken" in report


def test_every_package_of_slmlab_has_its_layer():
    """A module left out of the layers would be free to import anything: each one has its place."""
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    modules = {m.name for m in pkgutil.iter_modules(slmlab.__path__)}
    assert modules - placed == set(), "give each new package or module a layer in pyproject.toml"
    assert placed - modules == set()
