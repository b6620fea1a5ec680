"""The Ray executor on a real Ray cluster of several nodes on this machine (ray.cluster_utils):
the same results as the local executor, a lost node or worker costs nothing, and a replica that
cannot load its model is one line. One cluster for the module (Ray starts in about 10 s here)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slmlab.errors import CallFailed
from tests.test_cli import REPO, _one_line_error, slmlab
from tests.tiny import save_tiny_model

ray = pytest.importorskip("ray", reason="the ray extra is not installed (./scripts/setup.sh --with-ray)")

# Long enough to be caught mid-way: 32 samples of up to 160 tokens, one sequence at a time per replica.
SLOW = ["--limit", "8", "--n", "4", "--temperature", "0.8", "--max-new-tokens", "160", "--batch-size", "1"]


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    made = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
    for _ in range(2):
        made.add_node(num_cpus=1)
    made.wait_for_nodes()
    yield made
    if ray.is_initialized():
        ray.shutdown()
    made.shutdown()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    return str(save_tiny_model(tmp_path_factory.mktemp("models") / "tiny"))


def eval_args(model: str, out: Path, *extra: str) -> list[str]:
    return ["eval", "--model", model, "--benchmark", "minibench", "--out", str(out), *extra]


def on_ray(cluster, *extra: str) -> list[str]:
    return [*extra, "--executor", "ray", "--ray-address", cluster.address]


def results(out: Path) -> list[tuple]:
    """Every stored sample with its verdict: what a run gives, wherever it ran."""
    with sqlite3.connect(out / "slmlab.db") as db:
        return db.execute("SELECT task_id, sample_index, seed, completion, json_extract(judgement, '$.verdict') "
                          "FROM samples ORDER BY task_id, sample_index").fetchall()  # fmt: skip


@pytest.fixture(scope="module")
def slow_reference(tiny_dir, tmp_path_factory) -> list[tuple]:
    out = tmp_path_factory.mktemp("reference")
    assert slmlab(*eval_args(tiny_dir, out, *SLOW)).returncode == 0
    return results(out)


def test_an_eval_on_three_nodes_gives_the_local_executors_results(cluster, tiny_dir, tmp_path):
    args = ["--limit", "4", "--n", "3", "--temperature", "0.8", "--max-new-tokens", "24"]
    assert slmlab(*eval_args(tiny_dir, tmp_path / "local", *args)).returncode == 0
    done = slmlab(*eval_args(tiny_dir, tmp_path / "ray", *on_ray(cluster, *args)))
    assert done.returncode == 0, done.stderr
    assert results(tmp_path / "ray") == results(tmp_path / "local")  # same samples, same verdicts
    assert len(results(tmp_path / "local")) == 12
    assert "3 generator replicas on 3 nodes" in done.stdout
    assert done.stdout.count("generated per node: ") == 1 and "executed per node: " in done.stdout
    summary = next((tmp_path / "ray").glob("eval-*/summary.json")).read_text()
    assert '"executor": "ray"' in summary and summary.count('"memory_gb"') == 3  # the cluster it used
    # the executor is where a run ran, not what it is: the local command resumes the same run
    again = slmlab(*eval_args(tiny_dir, tmp_path / "ray", *args))
    assert "resumed: 12 of 12" in again.stdout


def _sandbox_workers() -> set[int]:
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"slmlab.execute.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(int(pid))
        except OSError:
            continue
    return found


def _orphans(pids: set[int]) -> set[int]:
    """Sandbox workers whose run is over: their parent is no slmlab command still running."""
    left = set()
    for pid in pids:
        try:
            parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            cmdline = Path(f"/proc/{parent}/cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if b"slmlab" not in cmdline or b"ray::" in cmdline:
            left.add(pid)
    return left


def _interrupted_run(tiny_dir: str, out: Path, cluster, interrupt) -> subprocess.CompletedProcess:
    """Run the slow eval on the cluster and call `interrupt()` once a few samples are stored."""
    process = subprocess.Popen([sys.executable, "-m", "slmlab.cli", *eval_args(tiny_dir, out, *on_ray(cluster, *SLOW))],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if len(results(out)) >= 2:
                break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    assert process.poll() is None and len(results(out)) < 32, "the run was not caught mid-way"
    interrupt()
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_losing_a_node_mid_run_loses_nothing_and_stores_nothing_twice(cluster, tiny_dir, tmp_path, slow_reference):
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    before = _sandbox_workers()
    done = _interrupted_run(tiny_dir, tmp_path / "out", cluster, lambda: cluster.remove_node(doomed))
    assert done.returncode == 0, done.stderr
    assert "4 generator replicas on 4 nodes" in done.stdout
    assert "was lost" in done.stdout  # its replica held requests, and they went to the others
    assert results(tmp_path / "out") == slow_reference  # every sample once, as an undisturbed run made it
    assert not _orphans(_sandbox_workers() - before)  # no sandbox left behind by the lost node


def test_losing_a_worker_process_mid_run_loses_nothing(cluster, tiny_dir, tmp_path, slow_reference):
    def kill_one_replica():
        replicas = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                    if _cmdline(pid).startswith(b"ray::GeneratorReplica")]  # fmt: skip
        assert replicas
        os.kill(replicas[0], signal.SIGKILL)

    done = _interrupted_run(tiny_dir, tmp_path / "out", cluster, kill_one_replica)
    assert done.returncode == 0, done.stderr
    assert "was lost" in done.stdout
    assert results(tmp_path / "out") == slow_reference


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_replica_that_cannot_load_its_model_fails_the_run_with_one_line(cluster, tiny_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    out = tmp_path / "out"
    done = slmlab(*eval_args(str(broken), out, *on_ray(cluster, "--limit", "2")))
    _one_line_error(done, "generator replica could not load", str(broken))
    assert not recorded_runs(out)  # the store is intact: no run was recorded


def recorded_runs(out: Path) -> int:
    if not (out / "slmlab.db").exists():
        return 0
    with sqlite3.connect(out / "slmlab.db") as db:
        return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def _square_or_fail(x: int, *, threads: int) -> tuple[int, int]:
    if x < 0:
        raise ValueError("negative")
    return x * x, threads


def test_a_sweep_on_the_cluster_gives_the_local_executors_results(cluster, tmp_path):
    from slmlab.pipeline.executor import make_executor
    from slmlab.train.search import parse_space, run_search
    from tests.test_train import _config, _corpus, _python_docs

    executor = make_executor("ray", parallel=3, address=cluster.address)
    assert dict(executor.run_each(_square_or_fail, [(2,), (3,), (4,)])) == {0: (4, 1), 1: (9, 1), 2: (16, 1)}
    with pytest.raises(CallFailed) as failed:
        list(executor.run_each(_square_or_fail, [(1,), (-1,)]))
    assert failed.value.index == 1 and isinstance(failed.value.error, ValueError)

    train_path, val_path = _corpus(tmp_path, _python_docs(40), _python_docs(5, offset=100))
    base = _config(tmp_path, "base", train_path, val_path, max_steps=3, eval_every=3)
    space = parse_space(["hidden_dim=16,32"])
    local = run_search(base, space, tmp_path / "local", parallel=2, collapse=False)
    clustered = run_search(base, space, tmp_path / "ray", parallel=2, collapse=False, executor="ray",
                           ray_address=cluster.address)  # fmt: skip
    drop = ("seconds", "tokens_per_second")
    assert [{k: v for k, v in r.items() if k not in drop} for r in clustered] == \
        [{k: v for k, v in r.items() if k not in drop} for r in local]  # fmt: skip


def test_a_node_that_cannot_give_the_sandbox_tier_refuses_the_run_with_one_line(cluster, tiny_dir, tmp_path):
    import shutil

    from slmlab.execute.tiers import detect

    if not detect()["bwrap"].available:
        pytest.skip("bubblewrap cannot run here, so no node can give the bwrap tier")
    # A node where bubblewrap is not on the PATH: it cannot give the bwrap tier the run asks for.
    lacking = cluster.add_node(num_cpus=1, env_vars={"PATH": "/nonexistent"})
    cluster.wait_for_nodes()
    assert shutil.which("bwrap")  # the driver's machine has it
    try:
        status = slmlab("cluster", "status", "--sandbox", "bwrap", "--ray-address", cluster.address)
        assert status.returncode == 0, status.stderr
        assert status.stdout.count("refuses: sandbox 'bwrap' is not available") == 1
        done = slmlab(*eval_args(tiny_dir, tmp_path / "out", *on_ray(cluster, "--limit", "2", "--sandbox", "bwrap")))
        _one_line_error(done, "cannot give the sandbox tier 'bwrap'", "bubblewrap is not installed")
        assert not recorded_runs(tmp_path / "out")  # refused before the run was recorded
    finally:
        cluster.remove_node(lacking)
