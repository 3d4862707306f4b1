#!/usr/bin/env bash
# Every GPU measurement of this project in one script, for a machine with one GPU.
# Run from the repository root: bash benchmarks/gpu_check.sh
# If that machine has torch but not the notebook stack and no network, put the wheels in .whl/ first
# (they are installed from there, nothing is downloaded), e.g. on a machine with network:
#   python3 -m pip download --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl papermill nbclient ipykernel ipywidgets nbval
# Writes everything under $OUT (default runs/gpu); the shipped checkpoint candidate is $OUT/palettenet_full.pt.
set -uo pipefail
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
# 1. throughput: phase 1 / phase 2 / inference images/s at 288x432, sampler share, share of bf16 peak
timeout 120 python3 -m pnlib bench train 2>&1 | tee "$OUT/bench_train.txt"
# 2. the user's command: every notebook, both phases, full preset, headless (target <= 8 min)
start=$(date +%s)
timeout 480 python3 -m pnlib run-notebooks --preset full --out "$OUT/notebooks" 2>&1 | tee "$OUT/run_notebooks.txt"
echo "run-notebooks --preset full: $(( $(date +%s) - start )) s" | tee -a "$OUT/run_notebooks.txt"
# 3. the trained full checkpoint and its record, small enough to ship
[ -f runs/full/checkpoint.pt ] && python3 -m pnlib export runs/full/checkpoint.pt "$OUT/palettenet_full.pt" \
  --command "python -m pnlib run-notebooks --preset full" 2>&1 | tee -a "$OUT/run_notebooks.txt"
cp runs/full/history.json "$OUT/history_full.json" 2>/dev/null
exit 0
