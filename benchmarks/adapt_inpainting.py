"""Leave-one-dataset-out repair, and what ``finetune`` does on the left-out stack.

The bundled repair networks were trained on isbi2012_train and fibsem_medulla_ts1 z < 200
only: on callosum_sssem and cdeep3m_sbem they are a model that never saw the stack. For each
chosen stack, the validation part is scored (the evaluation harness: simulated damage at
10/30/50 %, 256 px crops, seed 0) with the optical-flow reference alone, the bundled
weights, and the weights fine-tuned (``finetune``, self-supervised) on the stack's
*training* part, its known defects marked.

    .venv/bin/python benchmarks/adapt_inpainting.py [--stacks callosum_sssem cdeep3m_sbem]
        [--iterations 300] [--samples 40] [--unseen WEIGHTS]

The bundled weights are now round 2, trained on all four stacks: for the leave-one-out
numbers give round 1 (isbi2012 + FIB-SEM only) as ``--unseen``, from git history::

    git show 62c89b0:weights/flowinpaint-cpu.safetensors > runs/round1.safetensors
    git show 62c89b0:weights/flowinpaint-cpu.json > runs/round1.json

Writes ``benchmarks/results/adapt_inpainting.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_flowinpaint.engine import FlowInpainter
from napari_flowinpaint.tasks.training import finetune

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_weights import score_validation  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
#: name -> (file, spacing, training z range, validation z range, known defects)
STACKS = {
    # z 4 smeared; 9, 13, 16, 20, 29, 30, 43, 48 out of focus (see adapt_detection.py)
    "callosum_sssem": ("callosum_sssem", 1, (0, 36), (36, 50),
                       [4, 9, 13, 16, 20, 29, 30, 43, 48]),
    "cdeep3m_sbem": ("cdeep3m_sbem", 1, (0, 15), (15, 20), []),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stacks", nargs="+", default=list(STACKS), choices=list(STACKS))
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "adapt_inpainting")
    ap.add_argument("--unseen", default=None,
                    help="weights that never saw the stacks (default: the bundled ones)")
    args = ap.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name in args.stacks:
        file, spacing, (t0, t1), (v0, v1), known = STACKS[name]
        whole = tifffile.imread(DATA / file / "raw.tif")
        train, val = whole[t0:t1], whole[v0:v1]
        start = time.perf_counter()
        res = finetune(train, args.runs / f"{name}.safetensors", iterations=args.iterations,
                       weights=args.unseen,
                       spacing=spacing, damaged=[k - t0 for k in known if t0 <= k < t1] or None,
                       score_samples=16, overwrite=True)
        minutes = (time.perf_counter() - start) / 60
        engines = {"optical flow only": FlowInpainter(stages="initial_reference", device="cpu"),
                   "never saw it": FlowInpainter(args.unseen, device="cpu"),
                   "fine-tuned": FlowInpainter(weights=res.weights, device="cpu")}
        scores = score_validation(val, spacing=spacing, known=known, samples=args.samples,
                                  engines=engines, offset=v0)
        summary[name] = {
            "finetune_minutes": round(minutes, 1), "iterations": res.iterations,
            "train_held_out": {"before": res.psnr_before, "after": res.psnr_after},
            "validation": scores}
        print(json.dumps({name: summary[name]}, indent=1), flush=True)
    print("\n| left-out stack (validation part) | method | PSNR 10 % | 30 % | 50 % | mean |")
    print("|---|---|---|---|---|---|")
    for name, s in summary.items():
        for method, rows in s["validation"].items():
            vals = [r["psnr"] for r in rows.values()]
            print(f"| {name} | {method} | " + " | ".join(f"{v:.2f}" for v in vals)
                  + f" | {np.mean(vals):.2f} |")
    out = ROOT / "benchmarks" / "results" / "adapt_inpainting.json"
    out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
