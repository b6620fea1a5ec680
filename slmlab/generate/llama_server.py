"""llama.cpp's server (`llama-server`), found and run for a GGUF model.

The llamacpp backend runs the model in llama.cpp's own server: its parallel slots decode several
sequences in one batch (continuous batching), which a single llama.cpp stream cannot, and a C++
process of its own keeps generation off the GIL. PyPI has no llama.cpp binary, so
`scripts/build_llamacpp.sh` (run by the set-up) compiles one once, about 5 minutes on 2 cores, and
caches it;
a server the user built or installed works too.

Where the binary is looked for, in order: $SLMLAB_LLAMA_SERVER, the build cache
($SLMLAB_HOME/llama.cpp, then ~/.cache/slmlab/llama.cpp), `llama-server` on PATH.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from slmlab.cpu import without_passive_waiting
from slmlab.errors import UserError
from slmlab.models.cache import slmlab_home

ENV_VAR = "SLMLAB_LLAMA_SERVER"
BUILD_HINT = "build it once with ./scripts/build_llamacpp.sh (about 5 minutes), or set SLMLAB_LLAMA_SERVER"


def cpu_key() -> str:
    """The build cache's key for this CPU: the binary is compiled for its instruction set
    (-march=native), as in scripts/build_llamacpp.sh."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), platform.machine() + "\n")
    except OSError:
        flags = platform.machine() + "\n"
    return hashlib.sha256(flags.encode()).hexdigest()[:12]


def find_server() -> Path | None:
    """The llama-server binary slmlab would run, or None."""
    given = os.environ.get(ENV_VAR)
    if given:
        return Path(given) if os.access(given, os.X_OK) else None
    key = cpu_key()
    for home in dict.fromkeys((slmlab_home(), Path("~/.cache/slmlab").expanduser())):
        for binary in sorted((home / "llama.cpp").glob(f"*-{key}/bin/llama-server"), reverse=True):
            if os.access(binary, os.X_OK):
                return binary
    found = shutil.which("llama-server")
    return Path(found) if found else None


def require_server() -> Path:
    binary = find_server()
    if binary is None:
        given = os.environ.get(ENV_VAR)
        if given:
            raise UserError(f"{ENV_VAR}={given} is not an executable file: point it at llama-server")
        raise UserError(f"the llamacpp backend needs llama.cpp's server, which is not built here: {BUILD_HINT}")
    return binary


def server_version(binary: Path) -> str:
    """`llama-server --version`'s line, e.g. 'llama.cpp 0.5.0-dev (build 1, commit 0c1e570)'."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "llama.cpp (version unknown)"
    for line in (done.stderr + done.stdout).splitlines():
        if line.startswith("version:"):  # "version: 0.5.0-dev (build 1, commit 0c1e570)"
            return "llama.cpp " + line.removeprefix("version:").strip()
    return "llama.cpp (version unknown)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LlamaServer:
    """One llama-server process serving one GGUF file on a local port, with `slots` sequences
    decoded together; its log is kept in a temporary file and quoted when it fails."""

    def __init__(self, model_path: Path, slots: int, context: int, threads: int, binary: Path | None = None):
        self.binary = binary or require_server()
        self.model_path, self.slots, self.context, self.threads = model_path, slots, context, threads
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="slmlab-llama-server-", suffix=".log", delete=False)

    def command(self) -> list[str]:
        # Each slot keeps a cache of its own (context / slots), attended to alone: one cache shared by
        # the slots (--kv-unified) made every token attend over all of them, masked, and ran the
        # 200-sample HumanEval workload at 113 tokens/s against 156 without it.
        # --no-webui / no network: the server only answers this process, on loopback.
        return [str(self.binary), "--model", str(self.model_path), "--host", "127.0.0.1", "--port", str(self.port),
                "--ctx-size", str(self.context), "--parallel", str(self.slots),
                "--threads", str(self.threads), "--threads-batch", str(self.threads), "--n-gpu-layers", "0",
                "--no-webui", "--slot-prompt-similarity", "0.5"]  # fmt: skip

    def start(self, timeout: float = 300.0) -> LlamaServer:
        import httpx2 as httpx

        self.process = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT, env=without_passive_waiting(),
                                        stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise UserError(f"llama.cpp's server could not load {self.model_path.name}: {self.last_error()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise UserError(f"llama.cpp's server did not load {self.model_path.name} within {timeout:.0f} s")

    def last_error(self) -> str:
        """The server log's last error line, or its last line."""
        try:
            lines = [line.strip() for line in Path(self.log.name).read_text(errors="replace").splitlines()
                     if line.strip()]  # fmt: skip
        except OSError:
            return "no log"
        errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
        return (errors or lines or ["no output"])[-1][:300]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
