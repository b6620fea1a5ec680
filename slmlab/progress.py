"""Progress of a long stage (generation, execution), counted in samples and, where there are any,
in tokens, with a rate and the time left from the first token on.

On a terminal it is a rich bar; where the output is a file or a CI log a live bar prints nothing
until it ends, so there it is one plain line every `SLMLAB_PROGRESS_INTERVAL` seconds (10 unless
set) and one at the end, for example

    generating: 12/20 samples, 1,480 tokens, 41 tok/s, ~1m20s left

Generation is counted per token, not per finished sample: samples run side by side in one batch
and most finish near the end, so a count of finished samples sits at 0 for minutes.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console

INTERVAL_ENV = "SLMLAB_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 10.0


def duration(seconds: float) -> str:
    """1h05m, 3m20s, 45s."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


@dataclass
class Estimate:
    """What is known of a stage at one moment, and what follows from it.

    Tokens: before any sample has finished, the only honest total is the upper bound, every sample
    running to its token limit, and it is shown as one ("up to"). After that it is an estimate
    ("~"), made so that it is not biased low by which samples finish first: the short ones do, so
    the mean of the finished lengths says little about the samples still running. A running sample
    that has already produced L tokens is expected to end at the mean length of the finished
    samples longer than L, or at its limit while none is (nothing yet says where such a sample
    stops). A sample not yet started is expected to be as long as the mean of the finished and
    running ones so expected. The estimate converges to the truth as samples finish.
    """

    samples: int  # in the stage
    cap: int | None = None  # the most tokens one sample can have; None: a stage without tokens
    done: int = 0  # finished samples
    done_tokens: int = 0  # the tokens of the finished samples
    produced: int = 0  # every token produced so far, unfinished samples' included
    running: int = 0  # samples being generated now
    lengths: Counter[int] = field(default_factory=Counter)  # of the finished samples

    def step(self, tokens: int) -> None:
        """One step produced `tokens` tokens, one for each of that many running samples."""
        self.produced += tokens
        # A step over the whole batch produces one token per running sample; the one that admits
        # new samples only theirs, so the count is low until the next step.
        self.running = max(self.running, tokens)

    def finish(self, tokens: int) -> None:
        self.done += 1
        self.done_tokens += tokens
        self.lengths[tokens] += 1
        self.running = max(0, self.running - 1)

    @property
    def tokens(self) -> int:
        # An engine that reports no steps still reports finished samples' lengths.
        return max(self.produced, self.done_tokens)

    def total_tokens(self) -> tuple[int, bool]:
        """The expected number of tokens of the whole stage, and whether it is the upper bound."""
        left = self.samples - self.done
        bound = self.done_tokens + left * (self.cap or 0)
        if not self.done or not left:
            return max(bound, self.tokens), left > 0
        running = min(self.running, left)
        started = (self.tokens - self.done_tokens) / running if running else 0.0  # their mean length so far
        longer = [(length, count) for length, count in self.lengths.items() if length > started]
        each = (sum(length * count for length, count in longer) / sum(count for _, count in longer)
                if longer else (self.cap or started))  # fmt: skip
        mean = (self.done_tokens + running * each) / (self.done + running)
        expected = self.done_tokens + running * each + (left - running) * mean
        return max(self.tokens, min(bound, round(expected))), False

    def rate(self, elapsed: float) -> float:
        """Tokens (samples, in a stage without tokens) per second."""
        count = self.tokens if self.cap is not None else self.done
        return count / elapsed if elapsed > 0 else 0.0

    def seconds_left(self, elapsed: float) -> tuple[float | None, bool]:
        """Seconds to the end at the rate so far (None while nothing has been counted), and whether
        that is an upper bound rather than an estimate."""
        rate = self.rate(elapsed)
        if self.cap is None:
            return ((self.samples - self.done) / rate if rate else None), False
        total, bound = self.total_tokens()
        return ((total - self.tokens) / rate if rate else None), bound

    def describe(self, elapsed: float, finished: bool = False) -> str:
        """The progress line without its label."""
        parts = [f"{self.done}/{self.samples} samples"]
        rate = self.rate(elapsed)
        if self.cap is not None:
            parts.append(f"{self.tokens:,} tokens")
            speed = f"{rate:,.1f} tok/s" if rate < 10 else f"{rate:,.0f} tok/s"
        else:
            speed = f"{rate:.1f} samples/s"
        if finished:
            return ", ".join(parts) + f" in {duration(elapsed)} ({speed})"
        parts.append(speed)
        left, bound = self.seconds_left(elapsed)
        if left is None:
            parts.append("estimating time left")
        else:
            parts.append(f"{'up to ' if bound else '~'}{duration(left)} left")
        return ", ".join(parts)


def interval_from_env() -> float:
    """Seconds between plain progress lines: SLMLAB_PROGRESS_INTERVAL, or 10."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


class Meter:
    """The progress of one stage. `step(n)` for every n tokens produced (a BatchGenerator's
    `on_step`), `sample(tokens)` for every finished sample; used as a context manager, which shows
    the bar (or the lines) and prints one closing line with the totals.

        with Meter(console, "generating", len(requests), max_new_tokens) as meter:
            engine.run(requests, lambda g: meter.sample(g.tokens), on_step=meter.step)
    """

    def __init__(self, console: Console, label: str, samples: int, max_tokens: int | None = None,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.console, self.label, self.clock = console, label, clock
        self.estimate = Estimate(samples, max_tokens)
        self.interval = interval_from_env() if interval is None else interval
        self.bar = self._task = None
        self.started = self._next_line = 0.0
        self.lines = 0  # plain lines printed so far
        self._shown = -math.inf  # when the bar was last updated

    def __enter__(self) -> Meter:
        self.started = self.clock()
        self._next_line = self.started + self.interval
        if self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn(self.label), BarColumn(), TextColumn("{task.fields[text]}"),
                                TimeElapsedColumn(), console=self.console, transient=True)  # fmt: skip
            self.bar.start()
            self._task = self.bar.add_task(self.label, total=None, text="")
            self._show(self.started)
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self.bar is not None:
            self.bar.stop()
        if kind is None:
            self._print(f"{self.label}: {self.estimate.describe(self.clock() - self.started, finished=True)}")

    def step(self, tokens: int) -> None:
        self.estimate.step(tokens)
        self._show(self.clock())

    def sample(self, tokens: int = 0) -> None:
        self.estimate.finish(tokens)
        self._show(self.clock())

    def line(self, now: float | None = None) -> str:
        elapsed = (self.clock() if now is None else now) - self.started
        return f"{self.label}: {self.estimate.describe(elapsed)}"

    def _show(self, now: float) -> None:
        if self.bar is not None:
            if now - self._shown < 0.1:  # rich redraws ten times a second; no need to compute more often
                return
            self._shown, estimate = now, self.estimate
            done, total = (estimate.tokens, estimate.total_tokens()[0]) if estimate.cap is not None else (
                estimate.done, estimate.samples)  # fmt: skip
            self.bar.update(self._task, completed=done, total=total or None,
                            text=estimate.describe(now - self.started))  # fmt: skip
        elif now >= self._next_line:
            self._print(self.line(now))
            self.lines += 1
            self._next_line = now + self.interval

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
