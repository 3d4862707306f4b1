#!/usr/bin/env bash
# Every GPU measurement of this project in one script, for a machine with one GPU, inside a time budget.
#
#   bash benchmarks/gpu_check.sh             # on the GPU: the full preset (288x432)
#   bash benchmarks/gpu_check.sh --dry-run   # every step on the CPU at the `ci` preset, in minutes
#                                            # (tests/test_gpu_script.py runs it, so it cannot rot)
#
# Steps: (0) every notebook at the `ci` preset on the GPU (catches what only a GPU breaks, in about a
# minute); (1) training throughput of the paper's head and ours, alone on the machine, and the profile
# (benchmarks/gpu_profile.py); then at once, sharing the GPU: (2) `run-notebooks` at the preset, timed
# (only with --full-notebooks: at the first lease's speed it takes about 20 minutes, more than a
# lease); (3) the paper's head trained at the preset on every training photo, exported; (4) the
# data-scaling curve of the paper's head (pnlib.scaling). At the deadline whatever still runs is
# stopped and what finished is packed, so a budget too short for everything still returns every
# finished part. Measured on one H200 on 2026-12-04: benchmarks/RESULTS.md, "GPU".
#
# Environment: OUT (results; default runs/gpu), BUDGET_S (seconds for the whole script; default 540),
# PHOTOS (a folder holding the "More photos" folders lomiri lxqt palapeli tuxpaint; default .photos,
# else ~/pn-photos; without them only the bundled photos are used), SCALE_STEPS (phase-1 steps of each
# scaling run). The notebook stack (papermill, nbclient, ipykernel, ipywidgets) is installed from
# .whl/ when that folder exists (wheels for a machine without network; see the device notes in
# benchmarks/RESULTS.md).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0 FULLNB=0
for a in "$@"; do
  case $a in --dry-run) DRY=1;; --full-notebooks) FULLNB=1;; *) echo "unknown option $a" >&2; exit 2;; esac
done
T0=$(date +%s)
OUT=${OUT:-runs/gpu}
BUDGET_S=${BUDGET_S:-540}
WORK=${WORK:-runs/gpu-work}
mkdir -p "$OUT" "$WORK/logs"
L=$WORK/logs
export PYTHONUNBUFFERED=1 PNLIB_RUNS_DIR=${PNLIB_RUNS_DIR:-$PWD/$WORK/runs}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}   # pnlib from this checkout, pip-installed or not
if [ -d .whl ] && [ $DRY = 0 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  python3 -m ipykernel install --user --name python3 > /dev/null 2>&1
fi
left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }
log() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/log.txt"; }

# Data: the bundled photos, plus the "More photos" folders when present.
P=${PHOTOS:-}
[ -z "$P" ] && { [ -d .photos ] && P=.photos || P=$HOME/pn-photos; }
DATA=bundled
for d in lomiri lxqt palapeli tuxpaint; do [ -d "$P/$d" ] && DATA="$DATA,$P/$d"; done
if [ $DRY = 1 ]; then
  PRESET=ci; SCALE=(--photos 2 0 --seeds 0 --steps1 10 --steps2 0); NB=(--only 02); NBCI=(--only 01); BENCH_STEPS=3; FULLNB=1
else
  PRESET=full; SCALE=(--photos 6 12 25 0 --seeds 0 1 --steps1 "${SCALE_STEPS:-1000}" --steps2 0); NB=(); NBCI=(); BENCH_STEPS=15
fi
log "gpu_check: preset $PRESET, data $DATA, budget $BUDGET_S s, commit $(git rev-parse --short HEAD 2>/dev/null)"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi") > "$L/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >> "$L/gpu.txt" 2>&1

# 0. Every notebook at `ci` on this device: seconds each; a notebook only a GPU breaks shows here first.
log "0. run-notebooks --preset ci"
timeout 150 python3 -m pnlib run-notebooks --preset ci --out "$WORK/notebooks-ci" "${NBCI[@]}" > "$L/notebooks_ci.txt" 2>&1
log "   notebooks ci: rc $? $(grep -h 'notebooks ran\|FAILED' "$L/notebooks_ci.txt" | head -8 | tr '\n' ';')"

# 1. Throughput, alone on the machine: both phases, inference, sampler share, share of the matmul peak.
log "1. bench train (the paper's head, then ours), then the profile"
timeout 180 python3 -m pnlib bench train --preset $PRESET --head direct palette --steps $BENCH_STEPS \
  --json "$L/bench_train.json" > "$L/bench_train.txt" 2>&1
log "   bench: rc $? $(grep -h 'phase 1' "$L/bench_train.txt" | tr -s ' ' | tr '\n' ';')"
timeout 150 python3 benchmarks/gpu_profile.py --preset $PRESET --out "$L" $([ $DRY = 0 ] && echo --compile) \
  > "$L/profile_log.txt" 2>&1
log "   profile: rc $? $(grep -h 'img/s' "$L/profile_log.txt" | tr '\n' ';')"

# 2-4 share the GPU from here; each stops at the deadline (minus 45 s to pack).
STOP=$(( $(left) - 45 ))
log "2-4 start together; $STOP s until they are stopped"
[ $FULLNB = 1 ] && ( s=$(date +%s)
  timeout $STOP python3 -m pnlib run-notebooks --preset $PRESET --out "$WORK/notebooks" "${NB[@]}" > "$L/run_notebooks.txt" 2>&1
  echo "rc $? after $(( $(date +%s) - s )) s (run-notebooks --preset $PRESET, sharing the GPU with steps 3-4)" >> "$L/run_notebooks.txt"
) &
( timeout $STOP python3 -m pnlib train --preset $PRESET --head direct --data "$DATA" --out "$WORK/paper-all" \
    --no-progress > "$L/paper_all_train.txt" 2>&1
  echo "rc $?" >> "$L/paper_all_train.txt"
) &
( timeout $STOP python3 -m pnlib scaling --preset $PRESET --head direct --data "$DATA" "${SCALE[@]}" --jobs 2 \
    --out "$WORK/scaling" > "$L/scaling.txt" 2>&1
  echo "rc $?" >> "$L/scaling.txt"
) &
wait
log "2-4 ended: notebooks $(tail -1 "$L/run_notebooks.txt" 2>/dev/null || echo 'not run'); paper-all $(tail -1 "$L/paper_all_train.txt"); scaling $(tail -1 "$L/scaling.txt")"

# Pack: the paper's model on every photo (float16, in parts under 16 MiB), the run histories, the
# scaling points, the executed notebooks.
ck="$WORK/paper-all/checkpoint.pt"
if [ -f "$ck" ]; then
  timeout 30 python3 -m pnlib export "$ck" "$WORK/paper_all.pt" --half \
    --command "python -m pnlib train --preset $PRESET --head direct --data bundled,\$P/lomiri,\$P/lxqt,\$P/palapeli,\$P/tuxpaint (P: the photo folders of README 'More photos')" \
    >> "$OUT/log.txt" 2>&1 && split -b 12M -d "$WORK/paper_all.pt" "$OUT/paper_all.pt.part" \
    && cp "$WORK/paper_all.json" "$OUT/paper_all.json"
fi
cp "$OUT/log.txt" "$L/" 2>/dev/null
tar czf "$OUT/results.tgz" --exclude='*.pt' --exclude='*.tmp' --exclude='cache' --exclude='notebooks' -C "$WORK" . 2>> "$OUT/log.txt"
[ -d "$WORK/notebooks" ] && tar czf "$WORK/notebooks.tgz" -C "$WORK" notebooks \
  && split -b 15M -d "$WORK/notebooks.tgz" "$OUT/notebooks.tgz.part"
log "done: $(ls "$OUT" | tr '\n' ' ')"
exit 0
