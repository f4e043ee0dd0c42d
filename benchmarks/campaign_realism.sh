#!/usr/bin/env bash
# The realism training campaign (issue 32): the guided-inpainting generator against the hybrid
# discriminator with the paper's adversarial weight (lambda_adv = 0.1), raised over a ramp.
#
#   bash benchmarks/campaign_realism.sh            # start, or resume, in the background
#   tail -f runs/realism.log                      # follow it
#
# It runs niced, on THREADS torch threads (default 1: the other core stays free for work), and
# stops by itself after MINUTES (default 150) with a checkpoint. Run it again to go on:
# `train` resumes runs/realism/checkpoint.pt exactly. On a fresh machine without that folder it
# warm-starts from the weights committed in weights/ (generator and discriminator; the optimiser
# state starts anew). Usable weights are exported at every checkpoint to
# runs/realism/weights.safetensors; they are promoted into weights/ only when
# `benchmarks/eval_realism.py` shows the validation table improving (see weights/MODEL_CARD.md).
#
# Training data: the training parts only. isbi2012_train z >= 24 is the downstream membrane
# check and is never trained on (nor are isbi2012_test, fibsem z >= 200, callosum z >= 36,
# cdeep3m z >= 15).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/realism}
THREADS=${THREADS:-1}
MINUTES=${MINUTES:-150}
ITERATIONS=${ITERATIONS:-16000}  # round 3 ended at 12000; round 4 goes on to 16000 (warm restart of the rate)
mkdir -p "$(dirname "$RUN")"
OMP_NUM_THREADS=$THREADS nohup nice -n 19 .venv/bin/napari-flowinpaint train -o "$RUN" \
    --init bundled --flow-iters 0 --gan-iters "$ITERATIONS" --gan-warmup 0 --adv-ramp 1500 \
    --adv-weight 0.1 --recon l1 --gen-ssim-weight 0.1 --gen-grad-weight 1.0 \
    --lr-gen 1e-4 --lr-disc 2e-4 --checkpoint-every 250 --threads "$THREADS" \
    --max-minutes "$MINUTES" \
    --data "$DATA/isbi2012_train/raw.tif:0:24:1" \
           "$DATA/fibsem_medulla_ts1/raw.tif:0:200:2,3,4,5,6" \
           "$DATA/callosum_sssem/raw.tif:0:36:1:4,9,13,16,20,29,30" \
           "$DATA/cdeep3m_sbem/raw.tif:0:15:1" \
    >> "$RUN.log" 2>&1 &
echo "training in the background (pid $!): $RUN.log"
