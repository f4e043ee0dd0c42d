"""How far a fold's damage reaches beyond the detected mask, and what the fold margin covers.

On the validation part of each stack, folds are drawn into real sections
(``simulate_damage(section, "fold")``: a dark band 8-48 px wide, the tissue beyond it pulled
in), the section is judged between its real neighbours (``detect_damage``, relative to the
stack, ``fold_margin=False``), and the mask is then given the fold margin
(:func:`~napari_flowinpaint.tasks.detection.folds.grow_folds`; with ``grow`` 2 after it, as
napari's Auto-detect and ``auto`` do; and with twice its reach), against the mask as it was
and that mask grown by 2 px everywhere (what napari and ``auto`` gave before).
Reported per stack and variant:

- pixel F1, precision and recall of the band (the fold kind's row of the detection table
  scores the band only, so a margin costs precision there);
- **slivers**: the band's border pixels alongside the found fold (within its width of the
  mask) that lie outside the mask, a share of them (what a repair leaves as thin dark lines
  along the mask), and how far they reach (95th percentile of their distance to the mask);
- **darkening outside the mask** by distance from its edge (1-2, 3-4, 5-8, 9-16 px): the mean
  grey levels by which the damaged section is darker than the true one there (the pulled-in
  tissue is as often brighter as darker, so it averages out; the band's shoulders do not);
- the width the margin is scaled by (4 x the mean distance to the border of the found fold
  region) against the band's own.

Run from the repository root (about 10 minutes on 2 busy cores with ``--samples 20``)::

    .venv/bin/python benchmarks/fold_margin.py --samples 20

It writes ``benchmarks/results/fold_margin.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import tifffile

from napari_flowinpaint.tasks.detection import (
    detect_damage,
    folds,
    normal_region_area,
    refine_mask,
)
from napari_flowinpaint.tasks.io import SectionRange
from napari_flowinpaint.tasks.simulation import simulate_damage

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
STACKS = {  # name: (path, spacing, z range, real sections known to be damaged)
    "isbi2012_test": (DATA / "isbi2012_test" / "raw.tif", 1, (0, 30), [15]),
    "fibsem_medulla_ts1 z >= 200": (DATA / "fibsem_medulla_ts1" / "raw.tif", 4, (200, 250), []),
    "callosum_sssem z >= 36": (DATA / "callosum_sssem" / "raw.tif", 1, (36, 50), [43, 48]),
    "cdeep3m_sbem z >= 15": (DATA / "cdeep3m_sbem" / "raw.tif", 1, (15, 20), []),
}
#: What is compared: the detector's mask as it was, every region grown by 2 px (the napari
#: widget's and ``auto``'s default ``grow``), the fold margin (the default; a reach of
#: FOLD_REACH of the width), with ``grow`` 2 after it, and with twice its reach.
VARIANTS = ("none", "grow 2 px", "fold margin", "fold margin, grow 2 px", "reach 0.5")
RINGS = ((1, 2), (3, 4), (5, 8), (9, 16))


def _width(region: np.ndarray) -> float:
    if not region.any():
        return 0.0
    d = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    return float(4.0 * d[region].mean())


def _scores(found, truth, damaged, clean, width: float) -> dict:
    tp = int(np.count_nonzero(found & truth))
    fp = int(np.count_nonzero(found & ~truth))
    fn = int(np.count_nonzero(~found & truth))
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    out = {"f1": 2 * p * r / (p + r) if p + r else 0.0, "precision": p, "recall": r}
    outside = cv2.distanceTransform((~found).astype(np.uint8), cv2.DIST_L2, 5)
    if not found.any():
        outside[:] = np.inf
    # the band's border pixels alongside the found fold (not the stretches it missed whole)
    inside = cv2.distanceTransform(np.pad(truth, 1).astype(np.uint8), cv2.DIST_L2, 5)
    border = truth & (inside[1:-1, 1:-1] <= 1.5) & (outside <= max(width, 1.0))
    out["slivers"] = (float(np.count_nonzero(border & ~found) / np.count_nonzero(border))
                      if border.any() else None)
    out["reach_p95"] = float(np.percentile(outside[border], 95)) if border.any() else None
    darker = clean.astype(np.float32) - damaged.astype(np.float32)
    for lo, hi in RINGS:
        ring = ~found & (outside > lo - 0.5) & (outside <= hi + 0.5)
        out[f"dark_{lo}_{hi}"] = float(darker[ring].mean()) if ring.any() else None
    return out


def _variant(name: str, raw: np.ndarray, section: np.ndarray) -> np.ndarray:
    if name == "none":
        return raw
    if name.startswith("grow"):
        return refine_mask(raw, grow=int(name.split()[1]))
    if name.startswith("fold margin"):
        grown = folds.grow_folds(raw, section)
        return refine_mask(grown, grow=2) if name.endswith("grow 2 px") else grown
    keep, folds.FOLD_REACH = folds.FOLD_REACH, float(name.split()[1])
    try:
        return folds.grow_folds(raw, section)
    finally:
        folds.FOLD_REACH = keep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stacks", nargs="*", default=list(STACKS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fold_margin.json"))
    args = ap.parse_args()
    report = {"samples": args.samples, "seed": args.seed, "variants": list(VARIANTS),
              "stacks": {}}
    for name in args.stacks:
        path, spacing, (start, stop), known = STACKS[name]
        stack = tifffile.imread(path)
        t0 = time.perf_counter()
        normal = normal_region_area(SectionRange(stack, start, stop, spacing))
        rng = np.random.default_rng(args.seed)
        drawable = [z for z in range(start, stop) if z not in known]
        rows = {v: [] for v in VARIANTS}
        widths = []
        for _ in range(args.samples):
            z = drawable[int(rng.integers(len(drawable)))]
            damaged, truth = simulate_damage(stack[z], "fold", rng)
            zs = [k for k in range(z - 2 * spacing, z + 2 * spacing + 1, spacing)
                  if start <= k < stop]
            part = np.stack([damaged if k == z else stack[k] for k in zs])
            raw = detect_damage(part, zs.index(z), normal_area=normal, fold_margin=False)
            found = folds.fold_regions(raw, damaged)
            width = max((w for _, w in found), default=0.0)
            if found:
                widths.append((_width(truth), width))
            for v in VARIANTS:
                rows[v].append(_scores(_variant(v, raw, damaged), truth, damaged, stack[z],
                                       width) | {"fold_like": bool(found)})
        res = {}
        for v, items in rows.items():
            res[v] = {k: float(np.mean([r[k] for r in items if r[k] is not None]))
                      for k in items[0] if k != "fold_like"}
            like = [r for r in items if r["fold_like"]]  # where the margin applies
            res[v].update({f"{k}_fold_like": float(np.mean([r[k] for r in like]))
                           for k in ("f1", "precision", "recall") if like})
        res["fold_like_found"] = len(widths) / args.samples
        res["width_true_vs_estimated"] = widths
        res["normal_area"] = int(normal)
        res["seconds"] = time.perf_counter() - t0
        report["stacks"][name] = res
        print(f"\n{name}: {len(widths)} of {args.samples} folds found fold-like; "
              f"normal area {normal} px; {res['seconds']:.0f} s", flush=True)
        print("| mask | F1 | precision | recall | F1 where fold-like | slivers | reach p95 | "
              "darker 1-2 | 3-4 | 5-8 | 9-16 px |")
        for v in VARIANTS:
            r = res[v]
            print(f"| {v} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} "
                  f"| {r.get('f1_fold_like', float('nan')):.3f} "
                  f"| {100 * r['slivers']:.1f} % | {r['reach_p95']:.1f} | " + " | ".join(
                      f"{r[f'dark_{lo}_{hi}']:.1f}" for lo, hi in RINGS) + " |", flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
