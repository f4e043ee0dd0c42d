"""Repair quality of weights files on the validation parts of the four development stacks.

Each validation part is scored with the evaluation harness (simulated damage at 10/30/50 %,
256 px crops, seed 0; the same crops for every weights file). Sections that are real
defects (callosum_sssem 43 and 48, out of focus) are left out: each run of sections between
them is scored on its own, with samples in proportion to its length.

    .venv/bin/python benchmarks/compare_weights.py bundled runs/inp4/weights.safetensors
        [--flow] [--stacks isbi2012_test callosum_sssem] [--samples 30] [--stem NAME]

``bundled`` stands for the weights shipped in the package, ``--flow`` adds the optical-flow
reference alone. Writes ``benchmarks/results/<stem>.json`` and prints a Markdown table
(PSNR / SSIM per ratio, and the mean PSNR).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tifffile

from napari_flowinpaint.engine import FlowInpainter
from napari_flowinpaint.tasks.evaluation import evaluate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
#: name -> (file, spacing, validation z range, known real defects in it)
VALIDATION = {
    "isbi2012_test": ("isbi2012_test", 1, (0, 30), []),
    "fibsem_medulla_ts1": ("fibsem_medulla_ts1", 4, (200, None), []),
    "callosum_sssem": ("callosum_sssem", 1, (36, 50), [43, 48]),
    "cdeep3m_sbem": ("cdeep3m_sbem", 1, (15, 20), []),
}


def score_validation(val, *, spacing: int, known, samples: int, engines: dict,
                     offset: int = 0) -> dict:
    """Harness scores of ``engines`` (name -> FlowInpainter) on ``val``, defects left out.

    ``known`` are absolute section numbers, ``offset`` the absolute number of ``val[0]``.
    Returns ``{engine: {ratio: {"psnr", "psnr_hole", "ssim"}}}``, sample-weighted means over
    the runs of sections between the known defects.
    """
    cuts = [-1] + sorted(k - offset for k in known if 0 <= k - offset < len(val)) + [len(val)]
    parts = [(a + 1, b) for a, b in zip(cuts, cuts[1:], strict=False)
             if b - a - 1 >= 2 * spacing + 1]
    total = sum(b - a for a, b in parts)
    cells: dict = {}
    for a, b in parts:
        n = max(4, round(samples * (b - a) / total))
        rep = evaluate(val, spacing=spacing, crop=256, samples=n, seed=0, z_range=(a, b),
                       methods={k: e.inpaint for k, e in engines.items()})
        for m, rows in rep["results"].items():
            for k, r in rows.items():
                cells.setdefault(m, {}).setdefault(k, []).append(
                    (n, r["psnr"], r["psnr_hole"], r["ssim"]))
    return {m: {k: dict(zip(("psnr", "psnr_hole", "ssim"), np.average(
        np.array(c)[:, 1:], axis=0, weights=np.array(c)[:, 0]).tolist(), strict=True))
        for k, c in rows.items()} for m, rows in cells.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", help="weights files, or 'bundled'")
    ap.add_argument("--flow", action="store_true", help="also score the optical flow alone")
    ap.add_argument("--stacks", nargs="+", default=list(VALIDATION), choices=list(VALIDATION))
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--stem", default="compare_weights")
    args = ap.parse_args()
    engines = {"optical flow only": FlowInpainter(stages="initial_reference", device="cpu")} \
        if args.flow else {}
    for w in args.weights:
        engines[w] = FlowInpainter(device="cpu") if w == "bundled" else \
            FlowInpainter(weights=w, device="cpu")
    summary = {}
    for name in args.stacks:
        file, spacing, (v0, v1), known = VALIDATION[name]
        val = tifffile.imread(DATA / file / "raw.tif")[v0:v1]
        summary[name] = score_validation(val, spacing=spacing, known=known,
                                         samples=args.samples, engines=engines, offset=v0)
        print(json.dumps({name: summary[name]}), flush=True)
    lines = ["| validation part | weights | 10 % | 30 % | 50 % | mean PSNR |",
             "|---|---|---|---|---|---|"]
    for name, res in summary.items():
        for w, rows in res.items():
            cells = [f"{r['psnr']:.2f} / {r['ssim']:.3f}" for r in rows.values()]
            mean = np.mean([r["psnr"] for r in rows.values()])
            lines.append(f"| {name} | {w} | " + " | ".join(cells) + f" | {mean:.2f} |")
    table = "\n".join(lines)
    print(table)
    out = ROOT / "benchmarks" / "results" / f"{args.stem}.json"
    out.write_text(json.dumps({"samples": args.samples, "results": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
