"""The printed end of a training run: size, losses, speed, and the sanity warnings."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from slmlab.report.console import print_table


def _fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def print_summary(console: Console, summary) -> None:
    model = summary.model
    rows = [
        ("model", f"{model['family']}: {model['parameters']:,} parameters, "
                  f"{model['parameters_per_vocab_item']:,} per vocabulary item ({model['vocab_size']:,} tokens)"),
        ("steps", f"{summary.steps:,} ({summary.tokens:,} tokens, {summary.data['epochs']} epochs)"),
        ("train loss", _fmt(summary.train_loss)),
        ("val loss / ppl", f"{_fmt(summary.val_loss)} / {_fmt(summary.val_ppl, '.3f')}"),
        ("val bits per char", _fmt(summary.val_bits_per_char, ".3f")),
        ("best val loss", f"{_fmt(summary.best_val_loss)} (step {summary.best_step})"),
        ("speed", f"{summary.tokens_per_second:,.0f} tok/s on {summary.device} ({summary.dtype}), "
                  f"MFU {_fmt(summary.mfu, '.1%')} [{summary.mfu_basis}]"),
        ("time", f"{summary.seconds:,.0f} s"),
        ("run", summary.run_dir),
    ]  # fmt: skip
    if summary.paused:
        rows.append(("paused", "resume with --resume"))
    print_table(console, f"Training: {summary.experiment}", ("", ""), [(k, escape(v)) for k, v in rows])
    for warning in summary.warnings:
        console.print(f"[bold yellow]warning:[/bold yellow] {escape(warning)}")
