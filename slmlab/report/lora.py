"""The printed end of a LoRA sweep: one row per trial, every rate with its interval."""

from __future__ import annotations

from rich.console import Console

from slmlab.report.console import print_table

HEADERS = [
    "language",
    "rank",
    "size",
    "BLEU [95%]",
    "CodeBLEU",
    "syntax pass [95%]",
    "checked",
    "minibench",
    "MBPP",
]


def _show(value, spec: str) -> str:
    return "-" if value is None or value == "" else format(value, spec)


def sweep_rows(rows: list[dict]) -> list[list[str]]:
    return [[r["language"], str(r["rank"] or "base"), str(r["size"]),
             f"{r['bleu']:.2f} [{r['bleu_low']:.2f}, {r['bleu_high']:.2f}]", f"{r['codebleu']:.3f}",
             f"{_show(r['syntax_pass'], '.0%')} [{_show(r['syntax_low'], '.0%')}, {_show(r['syntax_high'], '.0%')}]",
             f"{r['syntax_checked']} (+{r['unchecked']} unchecked)", _show(r["minibench_pass_at_1"], ".2f"),
             _show(r["mbpp_pass_at_1"], ".2f")] for r in rows]  # fmt: skip


def print_sweep(console: Console, settings, records: list[dict]) -> None:
    from pathlib import Path

    from slmlab.studies.lora import csv_row

    print_table(console, f"LoRA sweep: {settings.sweep} ({settings.model})", HEADERS,
                sweep_rows([csv_row(r) for r in records]))  # fmt: skip
    console.print(f"results: {Path(settings.out) / f'results_{settings.sweep}.csv'}")
