#!/usr/bin/env bash
# Set up slmlab on a fresh machine: a virtual environment in .venv with slmlab and its pinned
# dependencies, and bubblewrap for the strongest sandbox tier where the system lets us install it
# (about 1 minute). With --with-llamacpp, also llama.cpp's server, the llamacpp engine: compiled
# once and cached, 5-8 minutes on 2 cores (scripts/build_llamacpp.sh). With --with-ray, also Ray, the
# cluster executor (--executor ray; about 10 seconds). With --with-browser, also Debian's chromium, which
# the web app's tests drive (apt-get, as root or with sudo; 1-2 minutes). Safe to run again: it only
# installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_LLAMACPP=
WITH_BROWSER=
EXTRAS=dev
for arg in "$@"; do
  case "$arg" in
    --with-llamacpp) WITH_LLAMACPP=1 ;;
    --with-ray) EXTRAS=dev,ray ;;
    --with-browser) WITH_BROWSER=1 ;;
    *) echo "usage: ./scripts/setup.sh [--with-llamacpp] [--with-ray] [--with-browser]" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "slmlab needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

# A Debian package, where the system lets us install it: as root, or with sudo that asks nothing.
# Usage: system_package COMMAND PACKAGE WHAT-IT-IS-FOR
system_package() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: install $2 for $3" >&2
  elif [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq "$2") >/dev/null 2>&1 \
      || echo "note: could not install $2; without it, no $3" >&2
  elif sudo -n true 2>/dev/null; then
    (sudo apt-get update -qq && sudo apt-get install -y -qq "$2") >/dev/null 2>&1 || true
  else
    echo "note: install $2 (apt-get install $2) for $3" >&2
  fi
}

system_package bwrap bubblewrap "the bwrap sandbox tier"
# The web app's browser tests drive a real Chromium: Debian's, since a browser download does not work
# everywhere (Playwright is pointed at it).
if [ -n "$WITH_BROWSER" ]; then
  system_package chromium chromium "the web app's browser tests"
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Quiet unless it fails: the build backend's notices are kept in .venv/install.log.
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch first and pinned, so nothing that needs it can pull a multi-GB CUDA build instead.
if ! { .venv/bin/python -m pip install -q "torch==2.13.0" && .venv/bin/python -m pip install -q -e ".[$EXTRAS]"; } >.venv/install.log 2>&1; then
  tail -n 30 .venv/install.log >&2
  echo "slmlab failed to install (full log: .venv/install.log)" >&2
  exit 1
fi
# Bytecode now, even where PYTHONDONTWRITEBYTECODE is set: each sandbox worker imports slmlab afresh
# and would otherwise compile it from source every time it starts.
.venv/bin/python -m compileall -q slmlab >/dev/null

# llama.cpp: not fatal when it cannot be built (no compiler, no cmake): runs use the hf engine.
if [ -n "$WITH_LLAMACPP" ]; then
  PYTHON=.venv/bin/python ./scripts/build_llamacpp.sh \
    || echo "note: llama.cpp was not built; runs use the hf engine (retry: ./scripts/build_llamacpp.sh)" >&2
fi
