#!/usr/bin/env bash
# Run HERE (the CPU machine, with the project's .venv) before scripts/gpu_check.sh runs on a GPU
# machine that has torch + CUDA but no network. Builds runs/gpu-check-kit/ (git-ignored, ~26 MB: with the tracked tree it must stay under the device tool's 64 MiB):
#   whl/         the Python packages s1 training needs that such an image may lack or hold too old
#                (transformers, trl, datasets and its dill/multiprocess, peft), for Python 3.12;
#   tiny-model/  a 3.3M-parameter Llama with the embedded SmolLM2 tokenizer (ChatML), randomly
#                initialised: the embedded GGUF (98 MB) is too big to carry.
# Then carry runs/gpu-check-kit and run `bash scripts/gpu_check.sh` there.
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=runs/gpu-check-kit
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=/work/main/.venv/bin/python
PYVER=${GPU_PYTHON_VERSION:-3.12}
mkdir -p "$KIT/whl"
for spec in transformers==5.24.0 trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
            peft==0.21.2; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$KIT/whl" "$spec"
done
PYTHONPATH=src "$PY" - "$KIT/tiny-model" <<'PYEOF'
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from s1.generation.models import load_tokenizer, resolve_model

out = sys.argv[1]
tok = load_tokenizer(resolve_model(None))
tok.save_pretrained(out)
cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=256,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=2048, tie_word_embeddings=True,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id)
torch.manual_seed(0)
model = LlamaForCausalLM(cfg).to(torch.bfloat16)
model.save_pretrained(out)
print(f"{out}: {model.num_parameters() / 1e6:.1f}M parameters, vocabulary {len(tok)}")
PYEOF
du -sh "$KIT"/*
echo "carry: $KIT   command: bash scripts/gpu_check.sh"
