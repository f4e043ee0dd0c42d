"""Detection benchmark on both validation stacks; writes benchmarks/results/detection.md/.json.

The same as the command line, once per stack::

    napari-flowinpaint evaluate-detection ../shared/data/isbi2012_test/raw.tif --samples 50 \\
        --known-damaged 15
    napari-flowinpaint evaluate-detection ../shared/data/fibsem_medulla_ts1/raw.tif \\
        --spacing 4 --z-range 200: --samples 50

Section 15 of isbi2012_test carries a real defect: a white blob of about 330 px (rows
317-336, columns 73-94; mean grey level 230 there, 162 of its pixels saturated at 255),
where sections 14 and 16 show tissue (mean 115 and 118). It is judged like every real section but
reported apart, not counted as an undamaged section (``--known-damaged 15``). No section of
fibsem_medulla_ts1 z >= 200 was found damaged.

Run from the repository root::

    .venv/bin/python benchmarks/eval_detection.py --samples 50
    .venv/bin/python benchmarks/eval_detection.py --samples 50 --neighbour-damage 0.5

With ``--neighbour-damage P`` each neighbour of a judged section is damaged too with
probability P; the results go to ``detection_neighbours.md/.json`` instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import tifffile

from napari_flowinpaint.tasks.evaluation import evaluate_detection, format_detection_table

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
STACKS = {  # name: (path, spacing, z range, real sections known to be damaged)
    "isbi2012_test (ssTEM, 512 px, neighbours 1 section away)":
        (DATA / "isbi2012_test" / "raw.tif", 1, None, [15]),
    "fibsem_medulla_ts1 z >= 200 (FIB-SEM, 250 px, neighbours 4 slices away)":
        (DATA / "fibsem_medulla_ts1" / "raw.tif", 4, "200:", []),
}
#: With ``--all``: the two stacks added later (serial-section SEM and serial block-face SEM).
MORE = {
    "callosum_sssem z >= 36 (ssSEM, 1024 px, neighbours 1 section away)":
        (DATA / "callosum_sssem" / "raw.tif", 1, "36:", [43, 48]),  # out of focus
    "cdeep3m_sbem z >= 15 (SBEM, 1024 px, neighbours 1 section away)":
        (DATA / "cdeep3m_sbem" / "raw.tif", 1, "15:", []),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--neighbour-damage", type=float, default=0.0, metavar="P")
    ap.add_argument("--all", action="store_true",
                    help="also callosum_sssem and cdeep3m_sbem (their validation parts)")
    ap.add_argument("--weights", default=None, help="detector weights (default: bundled)")
    ap.add_argument("--stem", default=None, help="name of the result files")
    ap.add_argument("--kinds", nargs="+", default=None, metavar="KIND",
                    help="only these damage kinds (each kind's samples then differ from a "
                         "run of all kinds: the draws are made in turn)")
    ap.add_argument("--no-fold-margin", action="store_true",
                    help="score folds as the detector draws them, without their margin")
    args = ap.parse_args()
    p = args.neighbour_damage
    stem = args.stem or ("detection_neighbours" if p else "detection")
    flag = (f" --neighbour-damage {p:g}" if p else "") + (" --all" if args.all else "") + (
        f" --weights {args.weights}" if args.weights else "") + (
        f" --kinds {' '.join(args.kinds)}" if args.kinds else "") + (
        " --no-fold-margin" if args.no_fold_margin else "")
    kinds = {} if args.kinds is None else {"kinds": args.kinds}
    stacks = {**STACKS, **MORE} if args.all else STACKS
    out_dir = ROOT / "benchmarks" / "results"
    reports, parts = {}, []
    for name, (path, spacing, zr, known) in stacks.items():
        rep = evaluate_detection(tifffile.imread(path), spacing=spacing, z_range=zr,
                                 samples=args.samples, seed=0, neighbour_damage=p,
                                 known_damaged=known, weights=args.weights,
                                 fold_margin=not args.no_fold_margin, **kinds)
        reports[name] = rep
        parts.append(f"**{name}**, {args.samples} samples per kind, seed 0, median "
                     f"{1000 * rep['seconds_per_slice']:.0f} ms per slice:\n\n"
                     + format_detection_table(rep))
        print(parts[-1] + "\n", flush=True)
    (out_dir / f"{stem}.md").write_text(
        f"<!-- benchmarks/eval_detection.py --samples {args.samples}{flag} -->\n\n"
        + "\n\n".join(parts) + "\n")
    (out_dir / f"{stem}.json").write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()
