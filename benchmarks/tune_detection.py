"""Choose the detector's post-processing on the TRAINING stacks (never the validation ones).

The network's probability map and the bright-blank cue are computed once per sample
(simulated damage of every kind, and every real section as it is) on the four training
parts: isbi2012_train, fibsem_medulla_ts1 z < 200 (spacing 4), callosum_sssem z < 36 and
cdeep3m_sbem z < 15 (their known real defects serve as neighbours but are not judged),
exactly as detection computes them
(:func:`napari_flowinpaint.tasks.detection.section_evidence`: neighbours matched, their
holes filled, levelled). Then the post-processing of
:func:`napari_flowinpaint.tasks.detection.decide_mask` is scored for the default and for
one setting changed at a time, with each stack's relative smallest region
(:func:`napari_flowinpaint.tasks.detection.normal_region_area`): mean pixel F1 per kind,
share of damaged slices flagged, share of real sections flagged.

Run from the repository root (about 8 minutes on 2 cores at 12 samples per kind)::

    .venv/bin/python benchmarks/tune_detection.py --samples 12
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import tifffile

from napari_flowinpaint.tasks.detection import (
    decide_mask,
    is_blank,
    normal_region_area,
    refine_mask,
    section_evidence,
    stack_reference,
)
from napari_flowinpaint.tasks.detection.detector import relative_min_area
from napari_flowinpaint.tasks.simulation import DAMAGE_KINDS, simulate_damage

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
#: name: (file, spacing, z range, real defects of the part, left out)
STACKS = {"isbi2012_train": (DATA / "isbi2012_train" / "raw.tif", 1, (0, 30), ()),
          "fibsem z<200": (DATA / "fibsem_medulla_ts1" / "raw.tif", 4, (0, 200), ()),
          "callosum z<36": (DATA / "callosum_sssem" / "raw.tif", 1, (0, 36),
                            (4, 9, 13, 16, 20, 29, 30)),
          "cdeep3m z<15": (DATA / "cdeep3m_sbem" / "raw.tif", 1, (0, 15), ())}


def collect(samples: int, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for name, (path, spacing, (z0, z1), known) in STACKS.items():
        zs = list(range(z0, z1, spacing))
        stack = tifffile.imread(path)[zs]
        # the known defects stay as neighbours (as in a real stack) but are not judged
        judged = [i for i, z in enumerate(zs) if z not in known]
        scale, level = stack_reference(stack)
        min_area = relative_min_area(100, normal_region_area(stack, scale=scale, level=level),
                                     stack[0].size)
        n = stack.shape[0]

        def judge(z, section, truth, kind, stack=stack, scale=scale, level=level, n=n,
                  name=name, min_area=min_area):
            prev = stack[z - 1] if z > 0 else None
            nxt = stack[z + 1] if z + 1 < n else None
            if is_blank(section, scale):
                p, bright = np.ones(section.shape, np.float32), np.zeros(section.shape, bool)
                alone, blank = False, None
            else:
                p, bright, alone, blank = section_evidence(prev, section, nxt, scale=scale,
                                                           level=level)
            items.append({"stack": name, "kind": kind, "p": p.astype(np.float16),
                          "bright": bright, "blank": blank, "truth": truth, "alone": alone,
                          "min_area": min_area})

        for z in judged:
            judge(z, stack[z], np.zeros(stack.shape[1:], bool), "none")
        for kind in DAMAGE_KINDS:
            for _ in range(samples):
                z = judged[int(rng.integers(len(judged)))]
                damaged, truth = simulate_damage(stack[z], kind, rng)
                judge(z, damaged, truth, kind)
        print(f"{name}: {len(items)} items", flush=True)
    return items


def score(items, stack=None, **opts) -> dict:
    per = {}
    for it in items:
        if stack is not None and it["stack"] != stack:
            continue
        m = refine_mask(decide_mask(it["p"].astype(np.float32), it["bright"],
                                    alone=it["alone"], blank=it["blank"], **opts),
                        min_area=it["min_area"])
        t = it["truth"]
        tp, fp, fn = (np.count_nonzero(m & t), np.count_nonzero(m & ~t),
                      np.count_nonzero(~m & t))
        f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0
        per.setdefault(it["kind"], []).append((f1, bool(m.any())))
    out = {k: (np.mean([f for f, _ in v]), np.mean([g for _, g in v])) for k, v in per.items()}
    dmg = [g for k, v in per.items() if k != "none" for _, g in v]
    out["damaged_flagged"] = float(np.mean(dmg))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=12)
    ap.add_argument("--cache", default=None,
                    help="keep the network's outputs in this .npz (reused when it exists)")
    args = ap.parse_args()
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=True) as f:  # our own file, written below
            items = list(f["items"])
    else:
        items = collect(args.samples)
        if cache is not None:
            np.savez(cache, items=np.array(items, dtype=object))
    kinds = list(DAMAGE_KINDS)
    print("stack threshold seed snap-fraction snap-margin | "
          + " ".join(f"{k[:6]:>6}" for k in kinds) + " | dmg-flag clean-flag")
    # the default, then one setting changed at a time (the full product takes hours at
    # 1024^2)
    default = (0.5, 0.95, 0.35, 6)
    grid = [default] + [v for v in itertools.chain(
        ((t, 0.95, 0.35, 6) for t in (0.4, 0.6)),
        ((0.5, s, 0.35, 6) for s in (0.0, 0.9, 0.98)),
        ((0.5, 0.95, f, 6) for f in (None, 0.5)),
        [(0.5, 0.95, 0.35, 0)])]
    for thr, seed, frac, margin in grid:
        for stack in (None, *STACKS):
            r = score(items, stack, threshold=thr, seed_threshold=seed,
                      snap_bright=frac is not None, snap_fraction=frac or 0.5,
                      snap_margin=margin)
            print(f"{(stack or 'all')[:6]:6} {thr:.2f} {seed:.2f} {frac!s:4} {margin} | "
                  + " ".join(f"{r[k][0]:6.3f}" for k in kinds)
                  + f" | {r['damaged_flagged']:.3f} {r['none'][1]:.3f}", flush=True)

if __name__ == "__main__":
    main()
