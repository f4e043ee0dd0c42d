"""Choose the detector's post-processing on the TRAINING stacks (never the validation ones).

The network's probability map and the bright-blank cue are computed once per sample
(simulated damage of every kind, and every real section as it is) on isbi2012_train and
fibsem_medulla_ts1 z < 200 (spacing 4); then the post-processing of
:func:`napari_flowinpaint.tasks.detection.decide_mask` is scored for a grid of settings:
mean pixel F1 per kind, share of damaged slices flagged, share of real sections flagged.

Run from the repository root::

    .venv/bin/python benchmarks/tune_detection.py --samples 12
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import tifffile

from napari_flowinpaint.tasks.detection import (
    bright_blank,
    damage_probability,
    decide_mask,
    is_blank,
    refine_mask,
    stack_scale,
)
from napari_flowinpaint.tasks.simulation import DAMAGE_KINDS, simulate_damage

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
STACKS = {"isbi2012_train": (DATA / "isbi2012_train" / "raw.tif", 1, (0, 30)),
          "fibsem z<200": (DATA / "fibsem_medulla_ts1" / "raw.tif", 4, (0, 200))}


def collect(samples: int, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for name, (path, spacing, (z0, z1)) in STACKS.items():
        stack = tifffile.imread(path)[z0:z1:spacing]
        scale = stack_scale(stack)
        n = stack.shape[0]

        def judge(z, section, truth, kind, stack=stack, scale=scale, n=n, name=name):
            prev = stack[z - 1] if z > 0 else None
            nxt = stack[z + 1] if z + 1 < n else None
            if is_blank(section, scale):
                p = np.ones(section.shape, np.float32)
                bright = np.zeros(section.shape, bool)
            else:
                p = damage_probability(prev, section, nxt, scale=scale)
                bright = bright_blank(section, (prev, nxt), scale)
            items.append({"stack": name, "kind": kind, "p": p.astype(np.float16),
                          "bright": bright, "truth": truth,
                          "alone": prev is None and nxt is None})

        for z in range(n):
            judge(z, stack[z], np.zeros(stack.shape[1:], bool), "none")
        for kind in DAMAGE_KINDS:
            for _ in range(samples):
                z = int(rng.integers(0, n))
                damaged, truth = simulate_damage(stack[z], kind, rng)
                judge(z, damaged, truth, kind)
        print(f"{name}: {len(items)} items", flush=True)
    return items


def score(items, stack=None, **opts) -> dict:
    per = {}
    for it in items:
        if stack is not None and it["stack"] != stack:
            continue
        min_area = opts.pop("min_area", 100)
        m = refine_mask(decide_mask(it["p"].astype(np.float32), it["bright"],
                                    alone=it["alone"], **opts), min_area=min_area)
        opts["min_area"] = min_area
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
    grid = itertools.product((0.4, 0.5, 0.6), (0.0, 0.9, 0.95, 0.98), (None, 0.35, 0.5),
                             (0, 6))
    for thr, seed, frac, margin in grid:
        for stack in (None, *STACKS):
            r = score(items, stack, threshold=thr, seed_threshold=seed,
                      snap_bright=frac is not None, snap_fraction=frac or 0.5,
                      snap_margin=margin, min_area=100)
            print(f"{(stack or 'both')[:6]:6} {thr:.2f} {seed:.2f} {frac!s:4} {margin} | "
                  + " ".join(f"{r[k][0]:6.3f}" for k in kinds)
                  + f" | {r['damaged_flagged']:.3f} {r['none'][1]:.3f}", flush=True)


if __name__ == "__main__":
    main()
