"""Ablation (issue 32): the textured repair with the grain matched as the metric measures it.

Today's textured repair scales the refined reference's detail so that its standard deviation
matches the section's own detail, then weakens it where the section's known pixels do not
confirm it (``engine.texture``). Measured by the realism metric (the image minus its Gaussian
blur, sigma 2 px), that gives 0.4-0.8 of the truth's grain, because re-blurring the detail
removes part of it. *Full grain* solves for the gain that makes the metric's grain in the hole
equal the section's (same strength rule): the textured repair at the top of its range.

    .venv/bin/python benchmarks/ablate_grain.py --samples 12     # ~10 min on 2 busy cores

Writes ``benchmarks/results/ablate_grain.json`` (the format of ``realism.json``).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_realism import PARTS, RESULTS, membrane_check, score_part  # noqa: E402
from tables import CLASSICAL, RATIOS  # noqa: E402

import napari_flowinpaint.engine.inpainter as INP  # noqa: E402
from napari_flowinpaint.engine import FlowInpainter  # noqa: E402
from napari_flowinpaint.engine import texture as T  # noqa: E402
from napari_flowinpaint.tasks.evaluation import METHODS  # noqa: E402

orig = T.carry_grain

def full_grain(fill, reference, damaged, mask, *, neighbours=(), sigma=T.GRAIN_SIGMA):
    """``carry_grain`` with the gain that makes std(out - blur(out)) in the hole equal the
    section's own grain (before the strength rule)."""
    fill = np.asarray(fill, np.float32)
    reference = np.asarray(reference, np.float32)
    mask = np.asarray(mask, bool)
    if not mask.any():
        return fill.copy()
    detail = reference - T._blur(reference, sigma)
    own = T._detail(damaged, ~mask, sigma)
    dist = T._distance(mask)
    target = T._std_over(own, dist > 2 * sigma + 2)
    if target is None:
        seen = [g for g in (T.grain_std(n, sigma=sigma) for n in neighbours) if g is not None]
        target = float(np.mean(seen)) if seen else None
    base = T._blur(fill, sigma)
    hf_d = detail - T._blur(detail, sigma)
    hf_b = base - T._blur(base, sigma)
    # gain g such that std(hf_b + g hf_d) in the hole = target (as the metric measures)
    a = float(np.mean(hf_d[mask] ** 2))
    b = 2 * float(np.mean(hf_d[mask] * hf_b[mask]))
    c = float(np.mean(hf_b[mask] ** 2))
    if target is None or a <= 1e-12:
        gain = 1.0
    else:
        disc = b * b - 4 * a * (c - target ** 2)
        gain = (-b + np.sqrt(max(disc, 0.0))) / (2 * a)
        gain = min(max(gain, 0.0), 4.0)
    gain *= T.grain_strength(T._correlation(own, detail, T._band(dist, sigma)))
    return (base + np.float32(gain) * detail).astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=12)
    args = ap.parse_args(argv)
    eng = FlowInpainter()

    def textured(p, d, n, m):
        return eng.inpaint(p, d, n, m)

    def textured_full(p, d, n, m):
        INP.carry_grain = full_grain
        try:
            return eng.inpaint(p, d, n, m)
        finally:
            INP.carry_grain = orig

    methods = {c: METHODS[c] for c in CLASSICAL}
    methods.update({"textured": textured, "full grain": textured_full})
    parts = {}
    for part in PARTS:
        mem = membrane_check() if part == "isbi2012_train" else None
        parts[part] = score_part(part, methods, samples=args.samples, membranes=mem)
        print(part, "done", flush=True)
    report = {"config": {"samples_per_ratio": args.samples, "ratios": list(RATIOS),
                         "methods": list(methods)}, "parts": parts}
    (RESULTS / "ablate_grain.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
