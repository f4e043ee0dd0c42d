"""Realism and downstream accuracy of every repair method on every validation part (issue 32).

For each validation part (isbi2012_train z >= 24: the downstream membrane check; isbi2012_test;
fibsem_medulla_ts1 z >= 200; callosum_sssem z >= 36 without its out-of-focus sections 43 and
48; cdeep3m_sbem z >= 15) the evaluation harness damages 256 px crops at 30 and 50 % (seed 0,
the same crops for every method) and scores each method: PSNR (whole crop and in the hole),
SSIM, FSIM, sharpness and grain in the hole (relative to the truth: 1 is the truth's), and on
isbi2012_train z >= 24 the membrane F1 in the hole of a fixed membrane classifier (a seeded
random forest trained on isbi2012_train z < 24 with its manual labels), next to its F1 there on
the undamaged crop.

    .venv/bin/python benchmarks/eval_realism.py [--samples 20] [--parts isbi2012_train ...]
        [--weights NAME=FILE ...] [--stem realism]

Methods: the classical baselines (average, Telea, biharmonic, optical flow), the refined
reference, and the full pipeline in its two modes (``textured``, the default, and
``faithful``) with the bundled weights; ``--weights NAME=FILE`` adds both modes of other
weights (a training campaign's candidate). Writes ``benchmarks/results/<stem>.json``, the
full tables ``<stem>.md``, the short table the README shows ``<stem>-summary.md`` and the
trade-off plot ``<stem>.png`` (PSNR margin over the best classical baseline against sharpness
on every part, and against the membrane F1 on the downstream check), and prints the tables.

    .venv/bin/python benchmarks/eval_realism.py --from-json benchmarks/results/realism.json

rewrites the tables and the plot from a JSON file without repairing anything.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_flowinpaint.engine import FlowInpainter
from napari_flowinpaint.tasks.evaluation import METHODS, MembraneClassifier, evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import CLASSICAL, RATIOS, margin  # noqa: E402
from tables import realism_full as markdown  # noqa: E402
from tables import realism_summary as summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
#: name -> (folder, spacing, (z0, z1) of the sections the neighbours may come from, the first
#: section that may be damaged, real defects never used)
PARTS = {
    # z 23 (a training section) may serve as a neighbour; every truth is z >= 24
    "isbi2012_train": ("isbi2012_train", 1, (23, 30), 24, []),
    "isbi2012_test": ("isbi2012_test", 1, (0, 30), 0, []),
    "fibsem_medulla_ts1": ("fibsem_medulla_ts1", 4, (200, 250), 200, []),
    "callosum_sssem": ("callosum_sssem", 1, (36, 50), 36, [43, 48]),
    "cdeep3m_sbem": ("cdeep3m_sbem", 1, (15, 20), 15, []),
}
KEYS = ("psnr", "psnr_hole", "ssim", "fsim", "sharpness", "grain", "membrane_f1",
        "membrane_f1_undamaged", "seconds")


def membrane_check():
    """The membrane labels of isbi2012_train and the fixed classifier trained on z < 24."""
    raw = tifffile.imread(DATA / "isbi2012_train" / "raw.tif")
    labels = tifffile.imread(DATA / "isbi2012_train" / "membranes.tif")
    return labels, MembraneClassifier(seed=0).fit(raw, labels, sections=range(24))


def runs_between_defects(z0: int, z1: int, known, spacing: int):
    """The runs ``(a, b)`` of sections in ``[z0, z1)`` between known defects, each long enough
    to hold a damaged section and both its neighbours."""
    cuts = [z0 - 1] + sorted(k for k in known if z0 <= k < z1) + [z1]
    return [(a + 1, b) for a, b in zip(cuts, cuts[1:], strict=False)
            if b - a - 1 >= 2 * spacing + 1]


def score_part(name: str, methods: dict, *, samples: int, membranes=None) -> dict:
    """``{method: {ratio: {metric: mean}}}`` on one validation part."""
    folder, spacing, (z0, z1), first, known = PARTS[name]
    stack = tifffile.imread(DATA / folder / "raw.tif")
    runs = runs_between_defects(z0, z1, known, spacing)
    total = sum(b - a for a, b in runs)
    cells: dict = {}
    for a, b in runs:
        n = max(4, round(samples * (b - a) / total))
        # the damaged section must be >= first: start the range so that its first centre is
        a = max(a, first - spacing)
        extra = {}
        if membranes is not None:
            extra = {"membranes": membranes[0], "membrane_classifier": membranes[1]}
        rep = evaluate(stack, spacing=spacing, crop=256, samples=n, seed=0, z_range=(a, b),
                       ratios=RATIOS, methods=methods, **extra)
        for m, rows in rep["results"].items():
            for k, r in rows.items():
                cells.setdefault(m, {}).setdefault(k, []).append((n, r))
    out: dict = {}
    for m, rows in cells.items():
        for k, parts in rows.items():
            row = {}
            for key in KEYS:
                pairs = [(n, r[key]) for n, r in parts if r.get(key) is not None]
                row[key] = (float(np.average([v for _, v in pairs], weights=[n for n, _ in pairs]))
                            if pairs else None)
            row["n"] = sum(n for n, _ in parts)
            out.setdefault(m, {})[k] = row
    return out


def plot(report: dict, path: Path) -> None:
    """PSNR margin against sharpness (every part and ratio) and against membrane F1."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    methods = report["config"]["methods"]
    markers = dict(zip(methods, itertools.cycle("os^vDP*XhH<>p")))
    for m in methods:
        xs, ys, fs, gs = [], [], [], []
        for res in report["parts"].values():
            for k, row in res[m].items():
                xs.append(row["sharpness"])
                ys.append(margin(res, m, k))
                if row.get("membrane_f1") is not None:
                    fs.append(row["membrane_f1"] / row["membrane_f1_undamaged"])
                    gs.append(ys[-1])
        ax1.scatter(xs, ys, marker=markers[m], label=m)
        if fs:
            ax2.scatter(fs, gs, marker=markers[m], label=m)
    for ax, xlabel in ((ax1, "sharpness in the hole (truth = 1)"),
                       (ax2, "membrane F1 in the hole / undamaged F1 (isbi2012_train z >= 24)")):
        ax.axhline(0.5, color="#999999", lw=0.8, ls="--")
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("PSNR - best classical baseline (dB)", fontsize=8)
        ax.set_ylim(-3, 2.5)  # the single-image baselines far below are left off
        ax.tick_params(labelsize=7)
    ax1.axvspan(0.8, 1.25, color="#dddddd", alpha=0.5, lw=0)
    ax2.axvline(0.9, color="#999999", lw=0.8, ls="--")
    ax1.legend(fontsize=7, loc="lower left")
    fig.suptitle("Where each repair sits on the perception-distortion trade-off "
                 "(every validation part, 30 and 50 %)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def write_outputs(report: dict, stem: str, samples) -> str:
    out = Path(stem) if Path(stem).is_absolute() else RESULTS / stem
    out.parent.mkdir(parents=True, exist_ok=True)
    table = markdown(report)
    note = f"<!-- made by benchmarks/eval_realism.py --samples {samples} -->\n\n"
    out.with_name(out.name + ".md").write_text(note + table)
    out.with_name(out.name + "-summary.md").write_text(note + summary(report))
    plot(report, out.with_name(out.name + ".png"))
    return table + "\n" + summary(report)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=20, help="samples per ratio and part")
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    ap.add_argument("--weights", nargs="*", default=[], metavar="NAME=FILE",
                    help="other weights to score in both modes")
    ap.add_argument("--no-bundled", action="store_true",
                    help="leave out the bundled weights' two modes")
    ap.add_argument("--stem", default="realism")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="rewrite the tables and the plot from this JSON report")
    args = ap.parse_args(argv)
    if args.from_json is not None:
        report = json.loads(args.from_json.read_text())
        print(write_outputs(report, args.from_json.with_suffix("").name
                            if args.stem == "realism" else args.stem,
                            report["config"]["samples_per_ratio"]))
        return 0

    methods = {m: METHODS[m] for m in CLASSICAL}
    methods["refined"] = METHODS["refined"]
    weights = [] if args.no_bundled else [("bundled", None)]
    weights += [tuple(w.split("=", 1)) for w in args.weights]
    for label, path in weights:
        for mode in ("textured", "faithful"):
            name = mode if label == "bundled" else f"{label}-{mode}"
            methods[name] = FlowInpainter(path, device="cpu", mode=mode).inpaint
    report = {"config": {"samples_per_ratio": args.samples, "ratios": list(RATIOS),
                         "crop": 256, "seed": 0, "weights": dict(weights),
                         "methods": list(methods)}, "parts": {}}
    membranes = None
    t0 = time.perf_counter()
    for part in args.parts:
        if part == "isbi2012_train" and membranes is None:
            membranes = membrane_check()
        report["parts"][part] = score_part(
            part, methods, samples=args.samples,
            membranes=membranes if part == "isbi2012_train" else None)
        print(f"{part} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    out = Path(args.stem) if Path(args.stem).is_absolute() else RESULTS / args.stem
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(out.name + ".json").write_text(json.dumps(report, indent=1) + "\n")
    print(write_outputs(report, args.stem, args.samples))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
