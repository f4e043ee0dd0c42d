"""Fine-tuning check: 300 iterations on isbi2012_train, scored before and after.

1. ``finetune`` on isbi2012_train (its last 20 % of sections held out) prints the PSNR in the
   hole on those held-out sections with the bundled and with the fine-tuned weights;
2. both weights are then scored on the validation stack isbi2012_test with the evaluation
   harness (spacing 1, 256 px crops, seed 0): fine-tuning must not lower it.

Run from the repository root (about 10 minutes on 2 CPU cores)::

    .venv/bin/python benchmarks/finetune_isbi.py [--iterations 300] [--samples 100]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_flowinpaint.engine import FlowInpainter
from napari_flowinpaint.tasks.evaluation import evaluate
from napari_flowinpaint.tasks.training import finetune

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "finetune_isbi")
    args = ap.parse_args()
    train = tifffile.imread(DATA / "isbi2012_train" / "raw.tif")
    test = tifffile.imread(DATA / "isbi2012_test" / "raw.tif")
    t0 = time.perf_counter()
    res = finetune(train, args.out / "tuned.safetensors", iterations=args.iterations,
                   score_samples=24, overwrite=True,
                   progress=lambda done, total: print(f"  [{done}/{total}]", end="\r"))
    print(f"fine-tuned {res.iterations} iterations in {time.perf_counter() - t0:.0f} s")
    print(f"isbi2012_train held-out z {res.held_out[0]}-{res.held_out[-1]}: PSNR hole "
          f"{res.psnr_before:.2f} -> {res.psnr_after:.2f} dB")
    engines = {"bundled": FlowInpainter(device="cpu"),
               "fine-tuned": FlowInpainter(weights=res.weights, device="cpu")}
    rep = evaluate(test, spacing=1, crop=256, samples=args.samples, seed=0,
                   methods={k: e.inpaint for k, e in engines.items()})
    print("isbi2012_test (validation), PSNR / PSNR hole / SSIM:")
    for name, rows in rep["results"].items():
        cells = [f"{k}: {r['psnr']:.2f} / {r['psnr_hole']:.2f} / {r['ssim']:.4f}"
                 for k, r in rows.items()]
        print(f"  {name:10s} " + "   ".join(cells))
    summary = {
        "iterations": res.iterations,
        "train_held_out": {"before": res.psnr_before, "after": res.psnr_after},
        "isbi2012_test": {name: {k: r["psnr"] for k, r in rows.items()}
                          for name, rows in rep["results"].items()},
        "isbi2012_test_mean_psnr": {name: float(np.mean([r["psnr"] for r in rows.values()]))
                                    for name, rows in rep["results"].items()},
    }
    out = ROOT / "benchmarks" / "results" / "finetune_isbi.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
