"""Ablation table (paper Tables 2-3 style) from equal-budget training runs.

Each run trains stage 2 only, for the same number of iterations, from the bundled model's
refined-reference network; the runs differ only by the ablated part::

    W=weights/flowinpaint-cpu.safetensors
    A="--init-flow $W --flow-iters 0 --gan-iters 500 --gan-warmup 200 --adv-weight 0.01"
    napari-flowinpaint train -o runs/abl_full $A
    napari-flowinpaint train -o runs/abl_norefined $A --no-refined
    napari-flowinpaint train -o runs/abl_nofal $A --no-fal
    napari-flowinpaint train -o runs/abl_nogan $A --no-gan

The table gives their validation PSNR in the hole on the 48 fixed training-stack crops
logged during training, and the evaluation harness on both validation stacks
(``--samples`` per ratio, seed 0).

Run from the repository root::

    .venv/bin/python benchmarks/ablations.py runs/abl_full runs/abl_norefined runs/abl_nofal \
        runs/abl_nogan
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import tifffile

from napari_flowinpaint.engine import FlowInpainter, load_weights
from napari_flowinpaint.tasks.evaluation import evaluate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
STACKS = {
    "isbi2012_test": (DATA / "isbi2012_test" / "raw.tif", 1, None),
    "fibsem z>=200": (DATA / "fibsem_medulla_ts1" / "raw.tif", 4, "200:"),
}


def _label(run: Path) -> str:
    s = load_weights(run / "weights.safetensors").meta["training"]["settings"]
    if not s["use_refined"]:
        return "without refined reference"
    if not s["use_fal"]:
        return "without FAL"
    if not s["use_gan"] or not s.get("adv_weight"):
        return "without GAN"
    return "full"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--samples", type=int, default=30)
    args = ap.parse_args()
    stacks = {k: (tifffile.imread(p), sp, zr) for k, (p, sp, zr) in STACKS.items()}
    rows = []
    for run in args.runs:
        with open(run / "validation.csv") as fh:
            val = list(csv.DictReader(fh))[-1]
        engine = FlowInpainter(weights=run / "weights.safetensors", device="cpu")
        row = {"variant": _label(run), "iterations": int(val["step"]),
               "val_psnr_hole": float(val["psnr_hole_output"])}
        for name, (stack, spacing, zr) in stacks.items():
            rep = evaluate(stack, spacing=spacing, z_range=zr, crop=256, samples=args.samples,
                           seed=0, methods={"m": engine.inpaint})["results"]["m"]
            row[name] = {k: (r["psnr"], r["ssim"]) for k, r in rep.items()}
        rows.append(row)
        print(json.dumps(row))
    lines = ["| variant | stage-2 iterations | val. PSNR hole | "
             + " | ".join(f"{n} PSNR {k}" for n in STACKS for k in ("0.1", "0.3", "0.5"))
             + " |", "|---" * (3 + 3 * len(STACKS)) + "|"]
    for r in rows:
        cells = [f"{r[n][k][0]:.2f}" for n in STACKS for k in ("0.1", "0.3", "0.5")]
        lines.append(f"| {r['variant']} | {r['iterations']} | {r['val_psnr_hole']:.2f} | "
                     + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    out = ROOT / "benchmarks" / "results" / "ablations.md"
    out.write_text(f"<!-- {' '.join(['benchmarks/ablations.py'] + [str(r) for r in args.runs])}"
                   f" --samples {args.samples} -->\n{table}\n")
    print("mean over ratios:", {r["variant"]: round(float(np.mean(
        [r[n][k][0] for n in STACKS for k in r[n]])), 2) for r in rows})


if __name__ == "__main__":
    main()
