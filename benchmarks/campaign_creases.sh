#!/usr/bin/env bash
# Detector round "creases" (issue 29, item 1): the bundled detector (round 8) fine-tuned with
# the thin curved folds of simulate_damage(kind="crease") drawn as often as the straight
# folds, otherwise the settings of round 8 (weights/DETECTOR_CARD.md).
#
#   bash benchmarks/campaign_creases.sh            # start, or resume, in the background
#   tail -f runs/det-creases.log                  # follow it
#
# Runs niced on THREADS torch threads (default 1); `train-detector` resumes its run folder
# after an interruption. The result is promoted into weights/ only when
# `benchmarks/eval_detection.py --all --samples 50 --weights runs/det-creases/detector.safetensors`
# shows no kind's F1 lower than the bundled detector's and no more clean sections flagged.
# Training data: the training parts only: isbi2012_train z < 24 (z >= 24 is the downstream
# membrane check now; round 8 still saw z < 30), fibsem z < 200, callosum z < 36, cdeep3m
# z < 15; isbi2012_test is never seen.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/det-creases}
THREADS=${THREADS:-1}
ITERATIONS=${ITERATIONS:-600}
INIT=${INIT:-bundled}
# more options, e.g. round 12: INIT=runs/det-creases/detector.safetensors RUN=runs/det-lines
# ITERATIONS=300 EXTRA="--p-continuing 0.3 --continuing-lines 0.7"
EXTRA=${EXTRA:-}
mkdir -p "$(dirname "$RUN")"
OMP_NUM_THREADS=$THREADS nohup nice -n 19 .venv/bin/napari-flowinpaint train-detector -o "$RUN" \
    --init "$INIT" --iterations "$ITERATIONS" --lr 1e-4 --checkpoint-every 50 \
    --p-clean 0.5 --p-one-sided 0.2 --p-damaged-neighbour 0.5 --p-continuing 0 $EXTRA \
    --p-lab 0.5 --window 512 \
    --kind-weights crack=3 fold=4 stain=3 defocus=2 crease=4 \
    --data "$DATA/isbi2012_train/raw.tif:0:24" "$DATA/isbi2012_train/raw.tif:0:24" \
           "$DATA/fibsem_medulla_ts1/raw.tif:0:200:2,3,4,5,6" \
           "$DATA/callosum_sssem/raw.tif:0:36:1:4,9,13,16,20,29,30" \
           "$DATA/cdeep3m_sbem/raw.tif:0:15:1" \
    >> "$RUN.log" 2>&1 &
echo "training in the background (pid $!): $RUN.log"
