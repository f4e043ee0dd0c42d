"""How well can any repair from the neighbours keep the cell boundaries? (issue 32)

The downstream membrane check of ``eval_realism.py`` (the fixed membrane classifier on
isbi2012_train z >= 24, F1 for the true boundaries inside the hole, 2 px tolerance) run on
fills that need no network: the neighbour above or below copied into the hole as it is,
their average, and the optical flow between them; beside the repairs. A copied neighbour is
real tissue, as sharp as the truth, 50 nm away: its F1 says how much of the section's
boundaries the neighbours hold at all.

    .venv/bin/python benchmarks/membrane_ceiling.py --samples 20   # ~3 min on 2 cores

Writes ``benchmarks/results/membrane_ceiling.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_realism import RESULTS, membrane_check, score_part  # noqa: E402

from napari_flowinpaint.engine import FlowInpainter  # noqa: E402
from napari_flowinpaint.tasks.evaluation import METHODS  # noqa: E402


def above(prev, damaged, next, mask):
    return np.where(mask, prev, damaged)


def below(prev, damaged, next, mask):
    return np.where(mask, next, damaged)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=20)
    args = ap.parse_args(argv)
    textured = FlowInpainter()
    methods = {"neighbour above, copied": above, "neighbour below, copied": below,
               "average": METHODS["average"], "flow": METHODS["flow"],
               "refined": METHODS["refined"],
               "textured": lambda p, d, n, m: textured.inpaint(p, d, n, m)}
    res = score_part("isbi2012_train", methods, samples=args.samples,
                     membranes=membrane_check())
    out = {"samples_per_ratio": args.samples, "part": "isbi2012_train z >= 24",
           "results": res}
    (RESULTS / "membrane_ceiling.json").write_text(json.dumps(out, indent=1))
    for m, rows in res.items():
        print(f"{m:28s}", "  ".join(
            f"{k}: F1 {r['membrane_f1']:.3f} of {r['membrane_f1_undamaged']:.3f} "
            f"({r['membrane_f1'] / r['membrane_f1_undamaged']:.2f}), PSNR {r['psnr']:.2f}"
            for k, r in rows.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
