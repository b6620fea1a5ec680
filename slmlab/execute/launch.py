"""Starting one sandboxed sample, for a worker (worker.py), in each tier.

`process`: the worker's zygote (zygote.py), a copy of the warm worker, forks a child that hardens
itself (harden.py) and runs the program; everything the child needs is computed before the fork,
because each object a freshly forked child touches costs it a page copy. `bwrap` and `subprocess`:
a fresh interpreter runs the runner (runner.main) with the payload on its stdin.

Each sample runs in a Slot: a work directory and its stdout, stderr and result files.
"""

from __future__ import annotations

import contextlib
import functools
import json
import marshal
import os
import sys
import warnings
from dataclasses import dataclass

from slmlab.execute import cgroups, runner, zygote
from slmlab.execute.exposure import expose, hide, private_tmpfs, unmount
from slmlab.execute.harden import (
    Hardening,
    RLimits,
    apply_once,
    apply_rlimits,
    become_subreaper,
    bwrap_rlimits,
    child_rlimits,
    harden,
    prepare,
    rlimit_settings,
    sandbox_roots,
)
from slmlab.execute.limits import Limits
from slmlab.execute.runner import RESULT_FD, compile_program, compile_tests, execute_and_report

_SCRATCH_MB = 512  # per worker, for all its samples' files (output is also capped per file)
SLOT_SCRATCH_MB = 128  # per slot, as root: what one sample may write, so that it fills nobody else's space


@dataclass
class WorkerConfig:
    tier: str  # "process" | "bwrap" | "subprocess"
    label: str  # what every outcome records as its sandbox
    base_dir: str
    hardening: dict  # Hardening fields except uid
    uids: list[int] | None  # per-sample uids (root only); None: keep ours
    max_parked: int = 16
    limits: dict | None = None  # the executor's default limits, applied once where they can be
    seccomp_bpf: str = ""  # compiled by the executor (hex), so workers need not import libseccomp
    bootstrap: str = ""  # python -c code that starts the runner in a fresh interpreter


class Slot:
    """A reusable sample directory: a work directory owned by the slot's uid, and the stdout, stderr
    and result files, kept open so that starting a sample only truncates them (creating and removing
    files per sample cost more than the sandbox itself)."""

    OUT, ERR, RES = 0, 1, 2

    def __init__(self, path: str, uid: int | None, group: cgroups.SlotGroup | None = None):
        """group: the slot's cgroup (cgroups.py), if any. The path may be a tmpfs of its own already
        (as root: Launcher), so that a sample that fills its space fills nobody else's."""
        self.path, self.uid, self.group = path, uid, group
        self.workdir = os.path.join(path, "work")
        if not os.path.isdir(path):
            os.mkdir(path, 0o711)
        self.mounted = os.path.ismount(path)
        os.mkdir(self.workdir, 0o700)
        if uid is not None:
            os.chown(self.workdir, uid, uid)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        self.paths = [os.path.join(path, name) for name in ("out", "err", "res")]
        self.fds = [os.open(file, flags, 0o600) for file in self.paths]

    def read(self, which: int, limit: int) -> bytes:
        return os.pread(self.fds[which], limit, 0)

    def size(self, which: int) -> int:
        return os.fstat(self.fds[which]).st_size

    def reset(self) -> None:
        """Empty the files and the work directory for the next sample (its processes are all dead)."""
        for fd in self.fds:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        os.chmod(self.workdir, 0o700)  # the program may have locked its own directory
        with os.scandir(self.workdir) as entries:
            leftovers = [entry.path for entry in entries]
        for path in leftovers:
            if os.path.isdir(path) and not os.path.islink(path):
                if not remove_tree(path):
                    raise OSError(f"could not remove {path}")
            else:
                os.unlink(path)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        if self.group is not None:
            self.group.close()
        if self.mounted:
            try:
                unmount(self.path)
            except OSError:  # a worker under its seccomp filter: the mount ends with its namespace
                return
        remove_tree(self.path)


@functools.lru_cache(maxsize=256)  # sample files repeat completions: the same answer, sampled again
def compiled_definitions(definitions: str) -> tuple[bytes | None, dict | None, str]:
    """(marshalled code or None, the syntax_error record or None, compile-time warnings as text).
    The warnings (SyntaxWarning) belong in the sample's stderr, where compiling in the sandbox would
    have put them, not in ours."""
    with warnings.catch_warnings(record=True) as caught:
        code, record = compile_program(definitions)
    text = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return (None if code is None else marshal.dumps(code)), record, text


# Each task's tests, compiled once per worker: sample files come task by task, but a shuffled file
# (or a long run) brings a task back after hundreds of others, so the cache holds a whole benchmark.
_compiled_tests = functools.lru_cache(maxsize=1024)(compile_tests)


def slot_path(base_dir: str, number: int) -> str:
    return os.path.join(base_dir, f"slot{number}")


def _mounted_hidden(hardening: Hardening) -> list[str]:
    """The hidden directories a root worker covers: all but the harness, which a fresh interpreter
    imports its runner from; of slmlab, only its tasks (the bundled references)."""
    harness = hardening.harness_paths
    return [p for p in hardening.hidden_paths if p not in harness] + [os.path.join(p, "tasks") for p in harness]


def _close_fds_except(lowest: int, keep: set[int]) -> None:
    start = lowest
    for fd in sorted(k for k in keep if k >= lowest):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 65536)


def remove_tree(path: str) -> bool:
    """Remove a directory tree a sample may have made hostile (read-only, deeper than Python's
    recursion limit, longer than a path may be). Never raises; True when it is gone."""
    import shutil  # here, not at the top: it maps zlib, bz2 and lzma (30 memory areas) into every fork

    def make_writable(func, target, _exc):  # a program may chmod its own files read-only
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    try:
        shutil.rmtree(path, onerror=make_writable)
    except (OSError, RecursionError, MemoryError):
        pass
    if not os.path.lexists(path):
        return True
    # shutil recurses in Python and uses whole paths; coreutils walks any depth with openat.
    import subprocess

    for command in (["chmod", "-R", "u+rwx", "--", path], ["rm", "-rf", "--", path]):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(command, capture_output=True, timeout=120, check=False)
    return not os.path.lexists(path)


def _hardening_failed(payload: dict, exc: BaseException) -> None:
    """Report a child whose hardening failed (our fault: harness_error) and end it."""
    record = {"status": "harness_error", "error_type": type(exc).__name__,
              "detail": f"hardening failed: {exc}", "nonce": payload["nonce"]}  # fmt: skip
    os.write(RESULT_FD, json.dumps(record).encode() + b"\n")
    os._exit(0)


class Launcher:
    """Starts a worker's samples. Made once per worker, in the worker, before it serves: the process
    tier's zygote is forked last, from the worker as it then is. close_in_zygote: the worker's
    descriptors its zygote (and so no sample) must hold."""

    def __init__(self, config: WorkerConfig, close_in_zygote: tuple[int, ...] = ()):
        self.config = config
        self.hardening = Hardening(**config.hardening)
        # One per uid a slot can have, made here: the children only look theirs up.
        self.hardenings = {
            uid: Hardening(**{**config.hardening, "uid": uid}) for uid in config.uids or [None]
        }
        bpf = bytes.fromhex(config.seccomp_bpf) if config.seccomp_bpf else None
        self.rlimits: dict[Limits, RLimits] = {}
        exposed = False
        if config.uids:  # root: let the sandbox uids reach the interpreter, keep sample files in memory
            try:
                expose(self.hardening.read_paths + self.hardening.harness_paths)
                exposed = True
            except OSError:
                pass  # the process tier still imports through /proc/self/fd (harden.reroute_sys_path)
            with contextlib.suppress(OSError):  # else they stay on disk, slower but as safe
                private_tmpfs(config.base_dir, _SCRATCH_MB)
                # Each slot's own space, mounted now: the seccomp filter this worker may load below
                # forbids mounting later. Slots are numbered from 1 (worker._take_slot).
                for number in range(1, config.max_parked + 3):
                    path = slot_path(config.base_dir, number)
                    os.mkdir(path, 0o711)
                    private_tmpfs(path, SLOT_SCRATCH_MB)
            with contextlib.suppress(OSError):  # the tiers with Landlock hide them from samples anyway
                hide(_mounted_hidden(self.hardening))
        # After the mounts: a Landlock rule names the directory a path leads to when it is made.
        self.prepared = prepare(self.hardening, bpf, [config.base_dir]) if config.tier == "process" else None
        if self.prepared is not None and exposed:
            self.prepared.reroute = False
        if self.prepared is not None and config.limits:
            apply_once(self.prepared, self.hardening, Limits(**config.limits))
        self.close_in_zygote = close_in_zygote
        self.zygote: zygote.Zygote | None = None
        if config.tier == "process":
            # The sandbox's directories but the work directory, which each child adds.
            runner.SANDBOX_ROOTS[:] = sandbox_roots(self.hardening)
            self._start_zygote()
        self.bwrap_args = []
        if config.tier == "bwrap":
            # Imported here: the process tier's forks stay smaller without it.
            from slmlab.execute.tiers import bwrap_arguments

            self.bwrap_args = bwrap_arguments(self.hardening.read_paths + self.hardening.harness_paths)

    def start(self, payload: dict, limits: Limits, slot: Slot, code: bytes, compile_warnings: str):
        """Start the sample: (its pid, its subprocess.Popen or None where it was forked).
        code: the program's definitions, compiled and marshalled (compiled_definitions)."""
        if self.config.tier == "process":
            return self._fork(payload, limits, slot, code, compile_warnings), None
        proc = self._spawn(payload, limits, slot)
        return proc.pid, proc

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()

    # ---- the process tier -----------------------------------------------------------------------
    def _fork(self, payload: dict, limits: Limits, slot: Slot, code: bytes, compile_warnings: str) -> int:
        # Everything the child needs, ready to use: each Python function a child runs, and each object
        # it touches, costs it page copies (copy-on-write), so the work is done here where it can be.
        payload = dict(payload, definitions="", definitions_code=code, compile_warnings=compile_warnings)
        tests_code = None if payload.get("cases") else _compiled_tests(payload["tests"])
        if tests_code is not None:
            payload.update(tests_code=tests_code, tests="")
        # marshal: the child decodes it in one C call, no Python frames
        request = marshal.dumps({"payload": payload, "rlimits": self._child_rlimits(limits), "files": slot.paths,
                                 "workdir": slot.workdir, "uid": slot.uid,
                                 "cgroup": slot.group.procs_files() if slot.group else []})  # fmt: skip
        if self.zygote is not None:
            try:
                return self.zygote.spawn(request)
            except (OSError, EOFError):  # the zygote died: start another for the next sample
                self.zygote.close()
                self.zygote = None
                self._start_zygote()
                raise
        pid = os.fork()
        if pid == 0:
            self._run_child(request)
        return pid

    def _child_rlimits(self, limits: Limits) -> RLimits:
        if limits not in self.rlimits:  # a run has one Limits, or a few (per-task timeouts)
            self.rlimits[limits] = child_rlimits(self.prepared, self.hardening, limits)
        return self.rlimits[limits]

    def _start_zygote(self) -> None:
        if zygote.supported():
            self.zygote = zygote.Zygote(self._run_child, self.close_in_zygote)

    def _run_child(self, request: bytes) -> None:
        """The sandboxed child, forked by the zygote (or the worker): harden, run, report, exit."""
        try:
            request = marshal.loads(request)
            payload = request["payload"]
            os.setsid()
            become_subreaper()
            if request["cgroup"]:  # first: everything the sample starts is inside its group
                try:
                    cgroups.join(request["cgroup"])
                except OSError as exc:
                    _hardening_failed(payload, exc)
            # Signals were reset once in the worker, whose stdin is /dev/null already.
            for target, path in zip((1, 2, RESULT_FD), request["files"], strict=True):
                fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
                os.dup2(fd, target)
                os.close(fd)
            try:
                harden(self.hardenings[request["uid"]], request["rlimits"], request["workdir"], self.prepared)
            except BaseException as exc:
                _hardening_failed(payload, exc)
            runner.SANDBOX_ROOTS.append(request["workdir"])
            _close_fds_except(RESULT_FD + 1, set(self.prepared.read_fds.values()))  # sys.path may use those
            execute_and_report(payload)
        finally:
            os._exit(0)

    # ---- the tiers that start an interpreter ----------------------------------------------------
    def _spawn(self, payload: dict, limits: Limits, slot: Slot):
        import subprocess  # only these tiers need it; it (and threading) would slow every fork

        hardening, workdir, uid = self.hardenings[slot.uid], slot.workdir, slot.uid
        run_payload = dict(payload, workdir=workdir, limits=limits.to_dict(), result_fd=slot.fds[Slot.RES])
        command = [sys.executable, "-I", "-S", "-B", "-c", self.config.bootstrap]
        if self.config.tier == "bwrap":
            # Inside the namespaces the runner applies Landlock and seccomp itself, as in `process`.
            run_payload["harden"] = {**hardening.__dict__, "uid": None}
            command = ["bwrap", *self.bwrap_args, "--bind", workdir, workdir, "--chdir", workdir,
                       "--", *command]  # fmt: skip
        else:
            # No Landlock (that is what `process` adds); the seccomp filter where the machine has it: no
            # sockets, no ptrace, no signals to process groups (kill(-1) would reach the user's CLI).
            run_payload["harden"] = {**hardening.__dict__, "uid": None, "landlock_abi": 0}
        payload_path = os.path.join(slot.path, "payload")
        with open(payload_path, "w", encoding="utf-8") as f:
            json.dump(run_payload, f)

        rlimits = bwrap_rlimits(limits) if self.config.tier == "bwrap" else rlimit_settings(limits, hardening.nproc_base)

        procs = slot.group.procs_files() if slot.group else []

        def limit_child() -> None:  # runs between fork and exec: rlimits apply to bwrap and python
            apply_rlimits(rlimits)
            if procs:  # as the slot's uid already: the group's cgroup.procs is the uid's to write
                cgroups.join(procs)

        with open(payload_path, "rb") as stdin:
            return subprocess.Popen(
                command, stdin=stdin, stdout=slot.fds[Slot.OUT], stderr=slot.fds[Slot.ERR], pass_fds=(slot.fds[Slot.RES],),
                cwd=workdir, env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir},
                start_new_session=True, preexec_fn=limit_child,
                user=uid, group=uid, extra_groups=[] if uid is not None else None,
            )  # fmt: skip
