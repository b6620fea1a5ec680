"""Java syntax: javac's parser in a warm JVM (JavaSyntaxServer.java), a millisecond a snippet once warm.

The helper is compiled once per JDK into ${SLMLAB_HOME:-~/.cache/slmlab}/javac/<sha>/ and then started
as `java -Xmx256m -XX:+UseSerialGC -cp DIR JavaSyntaxServer`. A JVM costs about a second to start, so
it stays up for the whole process (see WarmHelper in the package).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from slmlab.execute.syntax.helper import HelperError, verdict_from_reply, warm_helper, which
from slmlab.execute.syntax.verdict import SyntaxVerdict

CHECKER = "javac"
SERVER_SOURCE = Path(__file__).with_name("JavaSyntaxServer.java")
SERVER_CLASS = "JavaSyntaxServer"
JVM_OPTIONS = ("-Xmx256m", "-XX:+UseSerialGC", "-Xshare:auto", "-Duser.language=en", "-Dfile.encoding=UTF-8")


def find_jdk() -> tuple[str, str] | None:
    """(java, javac) of one JDK, or None. Looked up on every call (cheaply, see `which`) so a test can
    hide the JDK by patching shutil.which."""
    javac = which("javac")
    if javac is None:
        return None
    java = _java_beside(javac) or which("java")
    return (java, javac) if java else None


@functools.cache
def _java_beside(javac: str) -> str | None:
    # Prefer the java beside javac: the helper's class files must match the JVM that loads them.
    sibling = Path(os.path.realpath(javac)).with_name("java")
    return str(sibling) if os.access(sibling, os.X_OK) else None


def unavailable_reason() -> str | None:
    if which("javac") is None:
        return "no javac on PATH (install a JDK, e.g. openjdk-17-jdk-headless)"
    if find_jdk() is None:
        return "javac is on PATH but no java launcher is"
    return None


def cache_root() -> Path:
    home = os.environ.get("SLMLAB_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "slmlab"


@functools.cache
def compiled_server(javac: str) -> Path:
    """The directory holding JavaSyntaxServer.class, compiling it on first use.

    Keyed by the source's sha256 and the JDK it is built with; built in a temporary directory and
    renamed into place, so concurrent processes never see a half-written cache entry."""
    source = SERVER_SOURCE.read_bytes()
    digest = hashlib.sha256(source + b"\0" + os.path.realpath(javac).encode()).hexdigest()[:20]
    target = cache_root() / "javac" / digest
    if (target / f"{SERVER_CLASS}.class").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        try:
            done = subprocess.run(
                [javac, "-nowarn", "-encoding", "UTF-8", "-d", str(build), str(SERVER_SOURCE)],
                capture_output=True,
                text=True,
                timeout=180,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HelperError(f"could not compile {SERVER_SOURCE.name} with {javac}: {exc}") from exc
        if done.returncode != 0:
            raise HelperError(
                f"{javac} failed to compile {SERVER_SOURCE.name} (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
        try:
            build.rename(target)
        except OSError:  # another process got there first; its copy is as good as ours
            if not (target / f"{SERVER_CLASS}.class").is_file():
                raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target


def check_many(codes: Sequence[str]) -> list[SyntaxVerdict]:
    jdk = find_jdk()
    if jdk is None:
        return [SyntaxVerdict("unchecked", CHECKER, message=unavailable_reason() or "no JDK")] * len(codes)
    java, javac = jdk
    try:
        classes = compiled_server(javac)
    except (HelperError, OSError) as exc:
        return [SyntaxVerdict("unchecked", CHECKER, message=f"java helper unavailable: {exc}")] * len(codes)
    helper = warm_helper("java syntax helper", [java, *JVM_OPTIONS, "-cp", str(classes), SERVER_CLASS])
    replies = helper.request_many([code.encode("utf-8", "replace") for code in codes])
    return [verdict_from_reply(reply, CHECKER) for reply in replies]


def check(code: str) -> SyntaxVerdict:
    return check_many([code])[0]
