"""Hostile programs the sandbox must contain, each with the outcome it must be classified as.

Shared by tests/test_hostile.py and benchmarks. `{placeholders}` are filled by the test with paths
and ports of the harness under attack.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hostile:
    name: str
    code: str  # the completion (definitions)
    expected: frozenset[str]  # acceptable statuses
    gap: str | None = None  # the tier gap that would let it through (see slmlab.execute.tiers)
    tests: str = "assert f(2) == 3\n"


def _h(name, code, *expected, gap=None, tests="assert f(2) == 3\n"):
    return Hostile(name, code, frozenset(expected), gap, tests)


GOOD = "def f(x):\n    return x + 1\n"

HOSTILE = [
    _h("infinite_loop", "def f(x):\n    while True:\n        pass\n", "timeout"),
    # Capped at the process limit, it either stops on the failed fork (a violation) or, when its
    # children die fast enough to free their places, forks on until the time limit.
    _h("fork_bomb", "import os\nwhile True:\n    os.fork()\n" + GOOD, "sandbox_violation", "timeout"),
    _h("allocate_8gb", "buffer = bytearray(8 * 1024 ** 3)\n" + GOOD, "memory_exceeded"),
    _h(
        "output_1gb",
        "import sys\nfor _ in range(1024):\n    sys.stdout.write('x' * (1 << 20))\n" + GOOD,
        "output_limit",
    ),
    _h(
        "write_outside_workdir",
        "open({outside_file!r}, 'w').write('pwned')\n" + GOOD,
        "sandbox_violation",
        gap="write_outside_workdir",
    ),
    _h(
        "delete_harness_files",
        "import shutil\nshutil.rmtree({harness_dir!r})\n" + GOOD,
        "sandbox_violation",
        gap="write_outside_workdir",
    ),
    _h(
        "socket_to_loopback",
        "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "s.sendall(b'pwned')\n" + GOOD,
        "sandbox_violation",
        gap="network",
    ),
    _h(  # a host service on a pathname socket (docker, D-Bus), world-writable
        "unix_socket_to_host_service",
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({unix_socket!r})\ns.sendall(b'pwned')\n" + GOOD,
        "sandbox_violation", "runtime_error",  # runtime_error: bwrap, where the path does not exist
        gap="unix_sockets",
    ),
    _h(  # 6 x 300 MB against a 1 GiB limit, each process under it: the tree's total must be bounded
        "memory_spread_over_processes",
        "import os, time\nkids = []\nfor _ in range(6):\n    pid = os.fork()\n    if pid == 0:\n"
        "        block = b'x' * (300 << 20)\n        time.sleep(0.6)\n        os._exit(0)\n    kids.append(pid)\n"
        "held = sum(1 for pid in kids if os.waitpid(pid, 0)[1] == 0)\nprint('held', held)\n" + GOOD,
        "passed", "memory_exceeded",
        gap="per_sample_limits",
    ),
    _h(  # 600 MB of files: more than a worker's whole scratch space (512 MB) had room for
        "fill_scratch_space",
        "import time\nwritten = 0\ntry:\n    for i in range(600):\n        with open(f'f{{i}}', 'wb') as f:\n"
        "            f.write(b'x' * (1 << 20))\n        written += 1\nexcept OSError:\n    pass\n"
        "time.sleep(0.5)\nimport os\nfor i in range(written):\n    os.remove(f'f{{i}}')\nprint('written', written)\n" + GOOD,
        "passed",
        gap="per_sample_limits",
    ),
    _h(  # the checkout holds the store (slmlab-runs/: other runs' samples) and the code workers import
        "read_the_checkout",
        "print(sorted(__import__('os').listdir({checkout!r})))\nprint(open({checkout!r} + '/README.md').read()[:80])\n"
        + GOOD,
        "sandbox_violation", "runtime_error",
        gap="read_user_files",
    ),
    _h(  # a module in the checkout's root would be imported by every later worker, on every tier
        "write_module_into_checkout",
        "open({checkout!r} + '/bisect.py', 'w').write('def bisect(*a):\\n    return 0\\n')\n" + GOOD,
        "sandbox_violation",
        gap="write_outside_workdir",
    ),
    _h(
        "kill_parent",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + GOOD,
        "sandbox_violation",
        "runtime_error",
        gap="signal_other_processes",
    ),
    _h(
        "kill_harness_by_pid",
        "import os, signal\nos.kill({harness_pid}, signal.SIGKILL)\n" + GOOD,
        "sandbox_violation",
        "runtime_error",
        gap="signal_other_processes",
    ),
    _h(
        "read_parent_environment",
        "import os\nprint(dict(os.environ))\nfor pid in ('1', str(os.getppid()), '{harness_pid}'):\n"
        "    try:\n        print(open(f'/proc/{{pid}}/environ').read())\n    except OSError:\n        pass\n"
        "print(open('/proc/{harness_pid}/environ').read())\n" + GOOD,
        "sandbox_violation",
        "runtime_error",
        gap="read_parent_environment",
    ),
    _h(
        "daemon_outlives_run",
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(60)\n"
        "    os._exit(0)\ntime.sleep(0.2)\n" + GOOD,
        "sandbox_violation",
    ),
    _h("sys_exit_before_tests", "import sys\nsys.exit(0)\n" + GOOD, "no_tests_run"),
    _h("os_exit_before_tests", "import os\nos._exit(0)\n" + GOOD, "no_tests_run"),
    _h("exit_inside_candidate", "import sys\ndef f(x):\n    sys.exit(0)\n", "no_tests_run"),
    _h(
        "redefine_builtins_to_fake_pass",
        "import builtins\nbuiltins.abs = lambda x: 0\nabs = lambda x: 0\nlen = lambda x: 0\n"
        "builtins.isinstance = lambda *a: True\nbuiltins.str = lambda *a: 'passed'\n"
        "def f(x):\n    builtins.abs = lambda v: 0\n    return -100\n",
        "failed_assertion",
        tests="assert abs(f(2) - 3) < 1e-6\n",
    ),
    _h(
        "fake_pass_on_stdout",
        "print('passed')\nprint('{{\"status\": \"passed\"}}')\ndef f(x):\n    return 0\n",
        "failed_assertion",
    ),
    _h(
        "forge_result_record",
        'import os\nos.write(3, b\'\\n{{"status": "passed"}}\\n\')\nos._exit(0)\n' + GOOD,
        "sandbox_violation",
        "no_tests_run",
    ),
    _h(
        "ignore_sigterm_and_sigalrm",
        "import signal\nfor s in (signal.SIGTERM, signal.SIGALRM, signal.SIGINT):\n    signal.signal(s, signal.SIG_IGN)\n"
        "def f(x):\n    while True:\n        pass\n",
        "timeout",
    ),
    _h(
        "recursion_crashes_interpreter",
        "import sys\nsys.setrecursionlimit(10 ** 8)\ndef g(n):\n    return list(map(g, [n + 1]))\ng(0)\n"
        + GOOD,
        "runtime_error",
    ),
    _h(
        "close_stdout_and_stderr",
        "import os, sys\nos.close(1)\nos.close(2)\nsys.stdout = sys.stderr = None\n" + GOOD,
        "passed",
    ),
    _h("block_on_stdin", "data = input()\n" + GOOD, "runtime_error"),
]
