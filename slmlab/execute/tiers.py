"""Isolation tiers: what this machine offers, and which one `auto` picks.

- `bwrap`: bubblewrap namespaces (user, pid, net, mount, ipc, uts) as an unprivileged uid, plus the
  same Landlock + seccomp + rlimits inside as `process`.
- `process`: warm workers, each with a zygote (zygote.py) that forks one child per sample; the child
  drops to its own uid when the harness is root, sets rlimits, and restricts itself with Landlock
  and seccomp. The fast tier.
- `subprocess`: a fresh interpreter per sample with rlimits, a new session, a clean environment,
  (as root) its own uid, and the seccomp filter where there is one. No file restriction: clearly
  weaker.

`auto` picks the strongest tier (the fewest `gaps`: hostile programs it does not contain here),
preferring the faster one on a tie: `process`, else `bwrap`; `subprocess` only where neither exists.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from slmlab.errors import UserError
from slmlab.execute import cgroups, landlock
from slmlab.execute.harden import SAFE_PATH, seccomp_available

TIER_NAMES = ("bwrap", "process", "subprocess")
NOBODY = 65534
_UID_BASE = 1_500_000_000  # per-sample uids for root, far above any real account


@dataclass(frozen=True)
class Tier:
    name: str
    available: bool
    features: tuple[str, ...] = ()
    gaps: tuple[str, ...] = ()  # attacks this tier does not contain on this machine
    reason: str = ""  # why it is unavailable

    @property
    def label(self) -> str:
        return f"{self.name}[{','.join(self.features)}]" if self.features else self.name

    @property
    def complete(self) -> bool:
        return self.available and not self.gaps


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def sandbox_uids(count: int) -> list[int] | None:
    """uids for sandboxed samples when running as root: a private range when the user namespace maps
    one, else the shared `nobody`. None when not root (samples keep the user's uid)."""
    if not is_root():
        return None
    try:
        with open("/proc/self/uid_map") as f:
            for line in f:
                inside, _outside, length = (int(x) for x in line.split())
                if inside <= _UID_BASE and _UID_BASE + count <= inside + length:
                    return list(range(_UID_BASE, _UID_BASE + count))
    except (OSError, ValueError):
        pass
    return [NOBODY] * count


def bwrap_arguments(read_paths: list[str]) -> list[str]:
    """bwrap's arguments except the work directory."""
    args = ["--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # fmt: skip
    # Binds come after the tmpfs, or a Python installed under /tmp would be hidden by it.
    for path in ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", *read_paths]:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--clearenv",
             "--setenv", "PATH", SAFE_PATH, "--setenv", "LANG", "C.UTF-8"]  # fmt: skip
    return args


def _probe_bwrap() -> str:
    """'' when bubblewrap can start a sandbox here, else the reason it cannot."""
    if not shutil.which("bwrap"):
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    uid = NOBODY if is_root() else None
    try:
        done = subprocess.run(
            ["bwrap", *bwrap_arguments([]), "--", "/bin/sh", "-c", "true"], capture_output=True, timeout=20,
            user=uid, group=uid, extra_groups=[] if uid is not None else None, env={"PATH": SAFE_PATH},
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap failed to start: {exc}"
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        return f"bubblewrap cannot create namespaces here: {message[-1] if message else done.returncode}"
    return ""


@functools.lru_cache(maxsize=1)
def detect() -> dict[str, Tier]:
    linux = sys.platform == "linux"
    root = is_root()
    abi = landlock.abi_version() if linux else 0
    seccomp = linux and seccomp_available()
    owned = ["uid-drop"] if root else []
    hardening = owned + ([f"landlock{abi}"] if abi else []) + (["seccomp"] if seccomp else [])

    gaps = []
    if not seccomp and abi < 4:
        gaps.append("network")
    if not seccomp:  # Landlock does not guard connecting to a pathname UNIX socket
        gaps.append("unix_sockets")
    if not abi:
        gaps += ["write_outside_workdir", "read_user_files"]
    if not root and abi < 6:
        gaps.append("signal_other_processes")
    if not root and not abi:
        gaps += ["read_parent_environment", "read_answer_keys"]
    groups = cgroups.available() if linux else ""
    if not groups:  # limits per process only: a sample's tree may hold its memory limit many times over
        gaps.append("per_sample_limits")
    hardening += [f"cgroup-{groups}"] if groups else []
    process = Tier("process", linux, tuple(hardening), tuple(gaps), "" if linux else "needs Linux")

    reason = _probe_bwrap() if linux else "needs Linux"
    bwrap_gaps = () if groups else ("per_sample_limits",)
    bwrap = Tier("bwrap", not reason, ("userns", "pidns", "netns", "mountns", *hardening), bwrap_gaps, reason)

    sub_gaps = ([] if seccomp else ["network", "unix_sockets"]) + ["write_outside_workdir", "read_user_files"]
    sub_gaps += [] if groups else ["per_sample_limits"]
    if not root:
        sub_gaps += ["signal_other_processes", "read_parent_environment", "read_answer_keys"]
    sub_features = owned + (["seccomp"] if seccomp else []) + ([f"cgroup-{groups}"] if groups else [])
    subproc = Tier("subprocess", True, tuple(sub_features), tuple(sub_gaps))
    return {"bwrap": bwrap, "process": process, "subprocess": subproc}


def select_tier(requested: str = "auto") -> Tier:
    tiers = detect()
    if requested == "auto":
        # The one with the fewest gaps, the faster on a tie; subprocess only where neither is there.
        strong = [t for t in (tiers["process"], tiers["bwrap"]) if t.available]
        return min(strong, key=lambda t: len(t.gaps)) if strong else tiers["subprocess"]
    if requested not in tiers:
        raise UserError(f"unknown sandbox '{requested}': choose auto, {', '.join(TIER_NAMES)}")
    tier = tiers[requested]
    if not tier.available:
        raise UserError(f"sandbox '{requested}' is not available here: {tier.reason}; use --sandbox auto")
    return tier
