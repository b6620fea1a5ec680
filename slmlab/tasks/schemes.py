"""Annotation schemes (data: data/annotation_schemes.yaml) and the label each suggests for a sample
from what is already known of it: its verdict, its flags, its text. A suggestion is pre-selected in
the annotation page and marked as such; the person decides."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from slmlab.metrics.answers import arithmetic_slips

_FILE = Path(__file__).parent / "data" / "annotation_schemes.yaml"


@dataclass(frozen=True)
class Scheme:
    name: str
    description: str
    benchmarks: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]  # (name, help)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.labels)


@functools.cache
def schemes() -> dict[str, Scheme]:
    raw = yaml.safe_load(_FILE.read_text())
    return {name: Scheme(name, entry["description"], tuple(entry["benchmarks"]),
                         tuple((label["name"], label["help"]) for label in entry["labels"]))
            for name, entry in raw.items()}  # fmt: skip


def scheme_for(benchmark: str, judge: str | None = None) -> Scheme:
    """The scheme that names `benchmark`, else the one for every benchmark ("*"). A run judged by
    the math judge (a budget study's view names no benchmark) takes GSM8K's."""
    found = schemes()
    if judge == "math":
        benchmark = benchmark or "gsm8k"
    return next((s for s in found.values() if benchmark in s.benchmarks),
                next(s for s in found.values() if "*" in s.benchmarks))  # fmt: skip


_CODE_BY_VERDICT = {"syntax_error": "syntax"}
_CODE_BY_CATEGORY = {"NameError": "hallucinated_api", "AttributeError": "hallucinated_api",
                     "ModuleNotFoundError": "hallucinated_api", "ImportError": "hallucinated_api"}  # fmt: skip


def suggest(scheme: Scheme, text: str, generation: dict, judgement: dict | None) -> str | None:
    """The label the sample's record points at, or None where it points at none."""
    flags = generation.get("flags") or {}
    judgement = judgement or {}
    if scheme.name == "gsm8k":
        if flags.get("truncated"):
            return "incomplete"  # cut by the budget
        return "arithmetic" if arithmetic_slips(text) else None
    if flags.get("empty") or flags.get("mode_collapse"):
        return "degenerate"
    if flags.get("truncated"):
        return "incomplete"
    return _CODE_BY_VERDICT.get(judgement.get("verdict", "")) or _CODE_BY_CATEGORY.get(judgement.get("category") or "")
