#!/usr/bin/env bash
# Build llama.cpp's server once and cache it, for `--backend llamacpp` and for serving a GGUF model
# behind an OpenAI-compatible endpoint. PyPI has no llama.cpp binary, so the sources come from the
# llama-cpp-python sdist (which vendors a tested llama.cpp) and only the server is compiled: 5-8
# minutes on 2 cores (5m10s and 7m30s measured). Later runs find the cached binary at once.
#
# The binary lands in ${SLMLAB_HOME:-~/.cache/slmlab}/llama.cpp/<version>-<cpu>/bin/llama-server;
# slmlab looks there, then at $SLMLAB_LLAMA_SERVER, then at `llama-server` on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.3.36   # llama-cpp-python release whose vendored llama.cpp we build
CACHE=${SLMLAB_HOME:-$HOME/.cache/slmlab}
# -march=native code is only valid on the CPU it was built for: key the cache by the CPU's flags.
CPU=$( (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m) | sha256sum | cut -c1-12)
DEST="$CACHE/llama.cpp/$VERSION-$CPU"
if [ -x "$DEST/bin/llama-server" ]; then
  echo "llama.cpp server: cached at $DEST/bin/llama-server"
  exit 0
fi
for tool in cmake c++ make; do
  command -v "$tool" >/dev/null || { echo "building llama.cpp needs $tool (apt-get install cmake g++ make)" >&2; exit 1; }
done
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "building llama.cpp's server (llama-cpp-python $VERSION sources) into $DEST: 5-8 minutes, once"
"$PYTHON" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$WORK" >"$WORK/download.log" 2>&1 \
  || { tail -n 20 "$WORK/download.log" >&2; echo "could not download llama.cpp's sources from PyPI" >&2; exit 1; }
tar xzf "$WORK"/llama_cpp_python-$VERSION.tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
# Static, native, no network: no curl or TLS, no web UI fetched from a hub at build time.
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=ON -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
  >"$WORK/configure.log" 2>&1 || { tail -n 30 "$WORK/configure.log" >&2; exit 1; }
cmake --build "$WORK/build" --target llama-server llama-batched-bench -j "$(nproc)" >"$WORK/build.log" 2>&1 \
  || { tail -n 40 "$WORK/build.log" >&2; echo "llama.cpp failed to build" >&2; exit 1; }
mkdir -p "$DEST.partial/bin"
cp "$WORK/build/bin/llama-server" "$WORK/build/bin/llama-batched-bench" "$DEST.partial/bin/"
rm -rf "$DEST" && mv "$DEST.partial" "$DEST"   # appears whole or not at all
echo "llama.cpp server: built at $DEST/bin/llama-server"
