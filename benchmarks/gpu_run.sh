#!/usr/bin/env bash
# The `gpu` preset end to end on one GPU, on the demo data: VQ-VAE, test scores, the prior (a gated
# PixelCNN over the 64x64 codes), 128 samples and their realism metrics. benchmarks/gpu.md records
# what it measured.
#
#   bash benchmarks/gpu_run.sh                      # the gpu preset, budgets below
#   PRESET=smoke DEVICE=cpu TRAIN_MIN=0.3 PRIOR_MIN=0.2 N=32 SIZE=64 bash benchmarks/gpu_run.sh
#
# Variables: PRESET (gpu), DEVICE (cuda), TRAIN_MIN / PRIOR_MIN (wall-clock budgets in minutes;
# the best epoch by validation is kept), N (samples), SIZE (side the samples are scored at),
# RUN_DIR (runs/$PRESET-bench), OUT (a folder the six summary files are copied to; default
# RUN_DIR/summary; the log is what this script prints),
# PY (python), WORKERS (processes building the demo data).
set -euo pipefail
PRESET=${PRESET:-gpu}; DEVICE=${DEVICE:-cuda}; TRAIN_MIN=${TRAIN_MIN:-4}; PRIOR_MIN=${PRIOR_MIN:-2}
N=${N:-128}; SIZE=${SIZE:-128}; RUN_DIR=${RUN_DIR:-runs/$PRESET-bench}; PY=${PY:-python3}
WORKERS=${WORKERS:-$(nproc)}; DEST=${OUT:-$RUN_DIR/summary}
mkdir -p "$RUN_DIR" "$DEST"
export PYTHONUNBUFFERED=1
stamp() { echo "[$(date +%T)] $*"; }
keep() { [ -e "$1" ] && cp "$1" "$DEST/$2" || true; }   # keep SRC NAME

stamp "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "cpus $(nproc)"; }

stamp "demo data"
t0=$(date +%s)
[ -f data/demo/demo_manifest.json ] || "$PY" -m vqvae_lib.demo --workers "$WORKERS"
echo "demo_seconds $(( $(date +%s) - t0 ))"

stamp "VQ-VAE ($PRESET, $TRAIN_MIN min)"
t0=$(date +%s)
"$PY" -m vqvae_lib.train --preset "$PRESET" --run-dir "$RUN_DIR" --quiet \
      --device "$DEVICE" --max_minutes "$TRAIN_MIN"
echo "train_seconds $(( $(date +%s) - t0 ))"
keep "$RUN_DIR/history.csv" history.csv

stamp "test scores"
t0=$(date +%s)
"$PY" -m vqvae_lib.evaluate --checkpoint "$RUN_DIR/checkpoints/best.pt" --split test \
      --device "$DEVICE" --max-images 0
echo "evaluate_seconds $(( $(date +%s) - t0 ))"
keep "$RUN_DIR/metrics.json" metrics.json

stamp "prior ($PRIOR_MIN min)"
t0=$(date +%s)
"$PY" -m vqvae_lib.prior train --checkpoint "$RUN_DIR/checkpoints/best.pt" --device "$DEVICE" \
      --prior_max_minutes "$PRIOR_MIN"
echo "prior_seconds $(( $(date +%s) - t0 ))"
keep "$RUN_DIR/prior/history.json" prior_history.json
keep "$RUN_DIR/prior/metrics.json" prior_metrics.json

stamp "sample $N and score at $SIZE"
t0=$(date +%s)
"$PY" -m vqvae_lib.prior sample --prior "$RUN_DIR/prior/best.pt" -n "$N" \
      --out-dir "$RUN_DIR/samples" --device "$DEVICE" --seed 0
echo "sample_seconds $(( $(date +%s) - t0 ))"
"$PY" -m vqvae_lib.prior score "$RUN_DIR/samples" --size "$SIZE" -n "$N" --run-dir "$RUN_DIR" \
      --out "$DEST/generation_$PRESET.json" > /dev/null
"$PY" - "$RUN_DIR/samples" "$DEST/samples_$PRESET.png" <<'EOF'
import sys
from pathlib import Path
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import save_image
paths = sorted(Path(sys.argv[1]).glob("sample_*.png"))[:16]
tiles = torch.stack([pil_to_tensor(Image.open(p)).float() / 255 for p in paths])
save_image(tiles, sys.argv[2], nrow=4, padding=2)          # a 4x4 contact sheet
EOF
stamp "done"
