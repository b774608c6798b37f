#!/usr/bin/env bash
# How fast LLaVA-1.5-7B describes images on one GPU (an H200 or any CUDA card), batch size
# by batch size: the numbers behind VLM_BATCH_SIZE's advice in docs/settings.md.
#
#   bash bench/h200.sh                      # on the GPU machine, from the repository root
#   OUT=/tmp/run1 bash bench/h200.sh        # where the results go (default /tmp/vlmine-h200)
#   ARCH=tiny PYTHON=.venv/bin/python bash bench/h200.sh   # a CPU smoke run of this script
#
# Needs python3 with PyTorch (CUDA), transformers, Pillow and tokenizers; installs nothing
# and downloads nothing: the model is built with random weights (the real model's shapes,
# so the same work per generated token; the descriptions are noise). 3 to 6 minutes on an H200.
#
# Results: $OUT/describe-<variant>.json, one JSON line each (bench/describe.py's format:
# images per second per batch size, peak GPU memory), and $OUT/h200.log (versions,
# nvidia-smi, stderr). Each variant has its own time limit, so a slow or failing one
# cannot eat the others' time:
#   eager   transformers' default generate (dynamic KV cache): the backend's path as shipped,
#           plus KEYWORD_MODE=llm's second (text-only) pass on the same model
#   static  the same with a static KV cache, which transformers compiles (torch.compile);
#           to see whether a setting for it would be worth adding
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vlmine-h200}
mkdir -p "$OUT"
LOG="$OUT/h200.log"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
ARCH=${ARCH:-llava-1.5-7b}  # ARCH=tiny PYTHON=.venv/bin/python: a CPU smoke run of this script

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
  "$PY" -c "import torch, transformers, PIL; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'transformers', transformers.__version__, 'pillow', PIL.__version__, 'gpu', torch.cuda.is_available())"
} >>"$LOG" 2>&1

variant() {  # NAME SECONDS ARGS...
  local name=$1 limit=$2
  shift 2
  local started=$SECONDS
  timeout --signal=KILL "$limit" "$PY" bench/describe.py --random-weights "$ARCH" \
    --images 512 --max-batches 4 --max-new-tokens 60 "$@" >"$OUT/describe-$name.json" 2>>"$LOG"
  local rc=$?
  echo "== $name: rc=$rc in $((SECONDS - started)) s" | tee -a "$LOG"
  cat "$OUT/describe-$name.json"
}

variant eager 220 --batch-sizes 1,8,32,64,128 --keyword-pass
variant static 170 --batch-sizes 64 --generation-kwargs '{"cache_implementation": "static"}'
tail -n 40 "$LOG"
