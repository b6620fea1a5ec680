"""Progress of generation and execution: counted in tokens from the first step, an honest estimate
of the time left, plain lines when the output is not a terminal; and the OpenMP settings that
slmlab makes before torch loads."""

from __future__ import annotations

import io
import re
import warnings
from collections import Counter

import pytest
from rich.console import Console

from slmlab import cpu
from slmlab.progress import Estimate, Meter, duration, interval_from_env
from tests.test_cli import slmlab
from tests.tiny import save_tiny_model, tiny_model, tiny_tokenizer


def test_duration():
    assert [duration(s) for s in (0, 0.4, 45, 80, 600, 3900, -3)] == ["0s", "0s", "45s", "1m20s", "10m00s",
                                                                        "1h05m", "0s"]  # fmt: skip


def test_before_any_sample_finishes_the_total_is_the_upper_bound():
    estimate = Estimate(samples=20, cap=100, produced=500)
    assert estimate.total_tokens() == (2000, True)
    left, bound = estimate.seconds_left(elapsed=10.0)  # 50 tok/s, 1500 tokens to go at most
    assert bound and left == pytest.approx(30.0)
    assert estimate.describe(10.0) == "0/20 samples, 500 tokens, 50 tok/s, up to 30s left"


def state(samples: int, cap: int, finished: list[int], running: int, running_tokens: int) -> Estimate:
    return Estimate(samples, cap, done=len(finished), done_tokens=sum(finished), running=running,
                    produced=sum(finished) + running_tokens, lengths=Counter(finished))  # fmt: skip


def test_after_samples_finish_the_estimate_uses_their_lengths():
    # 4 finished with 40 tokens on average; 16 running have produced 200 (12.5 each) so far.
    estimate = state(20, 100, [30, 30, 50, 50], running=16, running_tokens=200)
    assert estimate.total_tokens() == (160 + 16 * 40, False)
    assert estimate.describe(12.0) == "4/20 samples, 360 tokens, 30 tok/s, ~15s left"
    # Samples not started yet are expected to be as long as the others: (40 + 4 * 20) / 6 = 20.
    assert state(20, 100, [10, 30], running=4, running_tokens=20).total_tokens() == (
        40 + 4 * 20 + 14 * 20,
        False,
    )


def test_the_estimate_is_not_biased_low_by_the_short_samples_finishing_first():
    # The running samples (75 tokens each so far) are longer than every finished one: nothing
    # says where they stop, so they count at their limit ...
    assert state(20, 100, [2, 2, 2, 2], running=16, running_tokens=1200).total_tokens() == (
        8 + 16 * 100,
        False,
    )
    # ... and at the mean of the finished samples longer than they are, when there are some.
    assert state(4, 100, [10, 50], running=2, running_tokens=40).total_tokens() == (60 + 2 * 50, False)


def test_running_samples_are_counted_from_the_steps():
    estimate = Estimate(samples=3, cap=10)
    estimate.step(2)  # two samples start
    estimate.finish(1)
    estimate.step(1)  # the one left
    estimate.step(1)  # a third one joins: only its token this step
    estimate.step(2)
    assert (estimate.running, estimate.produced, estimate.done) == (2, 6, 1)


def test_lengths_alone_count_when_no_steps_are_reported():
    estimate = Estimate(samples=4, cap=50, done=4, done_tokens=90)
    assert estimate.tokens == 90 and estimate.total_tokens() == (90, False)
    assert estimate.describe(3.0, finished=True) == "4/4 samples, 90 tokens in 3s (30 tok/s)"


def test_a_stage_without_tokens_counts_samples():
    assert Estimate(samples=10).describe(1.0) == "0/10 samples, 0.0 samples/s, estimating time left"
    assert Estimate(samples=10, done=4).describe(2.0) == "4/10 samples, 2.0 samples/s, ~3s left"
    assert (
        Estimate(samples=10, cap=8).describe(0.0) == "0/10 samples, 0 tokens, 0.0 tok/s, estimating time left"
    )


def test_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SLMLAB_PROGRESS_INTERVAL", "2.5")
    assert interval_from_env() == 2.5
    monkeypatch.setenv("SLMLAB_PROGRESS_INTERVAL", "soon")
    assert interval_from_env() == 10.0


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_output_is_one_line_per_interval_and_one_at_the_end():
    out, clock = io.StringIO(), Clock()
    console = Console(file=out, force_terminal=False, width=80)
    with Meter(console, "generating", samples=2, max_tokens=50, interval=10, clock=clock) as meter:
        for _ in range(30):  # 2 tokens a second for 30 s
            clock.now += 1
            meter.step(2)
        clock.now += 1
        meter.sample(30)
    lines = out.getvalue().splitlines()
    assert lines == [
        "generating: 0/2 samples, 20 tokens, 2.0 tok/s, up to 40s left",
        "generating: 0/2 samples, 40 tokens, 2.0 tok/s, up to 30s left",
        "generating: 0/2 samples, 60 tokens, 2.0 tok/s, up to 20s left",
        "generating: 1/2 samples, 60 tokens in 31s (1.9 tok/s)",
    ]
    assert meter.lines == 3


def test_terminal_output_is_a_bar_then_the_closing_line():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with Meter(console, "executing", samples=3, interval=0) as meter:
        for _ in range(3):
            meter.sample()
    assert meter.lines == 0 and "executing: 3/3 samples in" in out.getvalue()


def test_engine_reports_every_token_as_it_is_produced_with_no_deprecation_warning():
    from slmlab.generate import BatchGenerator, Request, SamplingParams

    engine = BatchGenerator(tiny_model(), tiny_tokenizer(), SamplingParams(temperature=0.8, max_new_tokens=12, seed=1),
                            batch_size=2)  # fmt: skip
    steps, lengths = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine.run([Request(i, "def f(x):" + " " * i, i) for i in range(3)], lambda g: lengths.append(g.tokens),
                   on_step=lambda n: steps.append((n, len(lengths))))  # fmt: skip
    assert len(lengths) == 3 and sum(n for n, _ in steps) == sum(lengths)
    assert steps[0] == (2, 0)  # tokens counted before any sample has finished


def test_piped_eval_prints_progress_lines_while_it_generates(tmp_path):
    model = save_tiny_model(tmp_path / "tiny")
    done = slmlab("eval", "--model", str(model), "--benchmark", "minibench", "--limit", "2", "--n", "2",
                  "--temperature", "0.8", "--max-new-tokens", "48", "--out", str(tmp_path / "runs"),
                  env={"SLMLAB_PROGRESS_INTERVAL": "0"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "Warning" not in done.stdout + done.stderr
    line = re.compile(r"^generating: (\d+)/4 samples, ([\d,]+) tokens, [\d.,]+ tok/s, (up to |~)\S+ left$")
    progress = [m for m in map(line.match, done.stdout.splitlines()) if m]
    assert len(progress) >= 10, done.stdout
    # It moves before the first sample is finished, with the upper bound for the time left.
    assert any(m[1] == "0" and int(m[2]) > 0 and m[3] == "up to " for m in progress)
    assert re.search(r"^generating: 4/4 samples, [\d,]+ tokens in \S+ \(", done.stdout, re.M)
    assert re.search(r"^executing: 4/4 samples in \S+ \(", done.stdout, re.M)


def test_openmp_waits_passively_with_no_more_threads_than_the_quota(monkeypatch):
    monkeypatch.setattr(cpu, "_affinity", lambda: 8)
    monkeypatch.setattr(cpu, "cpu_quota", lambda: None)
    environ = {}
    cpu.configure(environ)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE", cpu.OURS: "OMP_WAIT_POLICY"}
    assert cpu.without_passive_waiting(environ) == {}  # llama.cpp's server spins, as it is built to
    monkeypatch.setattr(cpu, "cpu_quota", lambda: 2.5)
    cpu.configure(environ)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE", cpu.OURS: "OMP_WAIT_POLICY", "OMP_NUM_THREADS": "3"}
    environ = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "8"}  # the user's settings win
    cpu.configure(environ)
    assert environ == {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "8"}
    environ = {"OMP_WAIT_POLICY": "PASSIVE"}  # the user's, for every engine
    cpu.configure(environ)
    assert cpu.without_passive_waiting(environ) == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "3"}


def test_cpu_quota_from_cgroup_files(tmp_path):
    assert cpu.cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu.cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu.cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu.cpu_quota(tmp_path) is None
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    assert cpu.cpu_quota(tmp_path) == 2.0
