"""The model hub (huggingface_hub), asked only once it is known to answer.

huggingface_hub retries a failed connection five times with backoff (about 30 s of "Retrying in Ns"
lines) before it gives up: right for a flaky link, wrong for a machine with no network at all. So
before its first hub call slmlab checks, once per process and within PROBE_SECONDS, that the hub's
host (or the proxy that reaches it) accepts a TCP connection. An offline machine gets one line in a
few seconds; a machine with a hub goes on to huggingface_hub as before, with its retries.

Name resolution (getaddrinfo) takes no timeout and can hang for many seconds on a machine whose
resolver is unreachable, so the probe runs in a daemon thread that is waited for at most
PROBE_SECONDS. Nothing here is needed by machines without huggingface_hub installed.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path

PROBE_SECONDS = 3.0  # a TLS-free TCP connect: milliseconds where the hub is reachable
METADATA_SECONDS = 10.0  # one HEAD request for a file's size and hash, once the host answered
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_probed: dict[str, str | None] = {}  # endpoint -> why it is unreachable (None: reachable)


class HubError(Exception):
    """The hub cannot deliver (the message says why). `answered`: the hub itself said so (an HTTP
    answer such as 404 or 401), as opposed to a connection that failed on the way."""

    def __init__(self, message: str, answered: bool = False):
        super().__init__(message)
        self.answered = answered


def _answered(exc: Exception) -> bool:
    return getattr(exc, "response", None) is not None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "on", "yes", "true")


def endpoint() -> str:
    """The hub's base URL, as huggingface_hub would use it (HF_ENDPOINT overrides)."""
    try:
        from huggingface_hub import constants

        return constants.ENDPOINT
    except ImportError:
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline_reason(timeout: float | None = None) -> str | None:
    """None when the hub can be asked; otherwise why not, in a few words. Checked once per process."""
    if _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE")):
        return "HF_HUB_OFFLINE is set"
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        return "huggingface_hub is not installed"
    url = endpoint()
    if url not in _probed:
        _probed[url] = probe(url, PROBE_SECONDS if timeout is None else timeout)
    return _probed[url]


def probe(url: str, timeout: float) -> str | None:
    """Whether a TCP connection to `url`'s host (or to the proxy configured for it) opens within
    `timeout` seconds, name lookup included; None when it does, else why not."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    label = f"{host}:{port}"
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxied = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxied.hostname or "", proxied.port or 80
        label = f"proxy {host}:{port} (for {label})"
    outcome: dict[str, BaseException] = {}

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=connect, name="slmlab-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"{label} did not answer within {timeout:g} s"
    if "error" in outcome:
        error = outcome["error"]
        why = getattr(error, "strerror", None) or str(error) or type(error).__name__
        return f"cannot connect to {label}: {why}"
    return None


def forget_probe() -> None:
    """Probe again on the next call (tests; a long-lived process whose network came back)."""
    _probed.clear()


def _describe(exc: Exception) -> str:
    """A hub failure in a few words, with the fix where there is one."""
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):
        return "gated: accept its licence on the hub page, then log in (hf auth login)"
    if isinstance(exc, errors.RepositoryNotFoundError):
        return "no such repository on the hub (or it is private: log in with hf auth login)"
    if isinstance(exc, errors.RevisionNotFoundError):
        return "no such revision on the hub"
    if isinstance(exc, errors.EntryNotFoundError):
        return "no such file in the repository"
    first = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def file_metadata(repo: str, filename: str, revision: str | None = None) -> tuple[str | None, int | None]:
    """The hub's own sha256 of a file (its LFS object id, which the hub sends as the file's ETag;
    None for a small non-LFS file, whose ETag is a git hash) and its size. One HEAD request, no
    retries: callers have probed the host first."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        meta = get_hf_file_metadata(hf_hub_url(repo, filename, revision=revision), timeout=METADATA_SECONDS)
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many kinds: each becomes a reason
        raise HubError(_describe(exc), _answered(exc)) from None
    etag = (meta.etag or "").strip('"').lower()
    return (etag if _SHA256.match(etag) else None), meta.size


def download(repo: str, filename: str, revision: str | None, into: Path) -> Path:
    """Download one file of a hub repository into the folder `into`; its path."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, revision=revision, local_dir=into))
    except Exception as exc:  # noqa: BLE001
        raise HubError(_describe(exc), _answered(exc)) from None


def check_model(hub_id: str) -> None:
    """Returns when `hub_id` is a transformers model the hub will serve (it has a config.json);
    raises HubError saying why not otherwise."""
    try:
        file_metadata(hub_id, "config.json")
    except HubError as exc:
        if exc.answered and str(exc) == "no such file in the repository":
            raise HubError("has no config.json, so it is not a transformers model (for a GGUF repository, "
                           "download its .gguf file and pass that path)", answered=True) from None  # fmt: skip
        raise


def cached_snapshot(hub_id: str) -> Path | None:
    """The local hub cache's copy of `hub_id` with its weights (what an earlier online run left), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(hub_id, "config.json")
    if not isinstance(found, str):
        return None
    snapshot = Path(found).parent
    weights = ("*.safetensors", "pytorch_model*.bin", "*.gguf")
    return snapshot if any(next(snapshot.glob(p), None) for p in weights) else None
