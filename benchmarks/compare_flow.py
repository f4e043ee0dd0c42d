"""Compare the optical-flow back-ends of the initial reference on real EM data.

For each stack and each of ``engine.FLOW_METHODS`` (OpenCV DIS and Farneback), the initial
reference (FlowInpaint Eq. 1-3) is interpolated between the neighbours ``z - K`` and ``z + K``
and compared with the true section ``z``: PSNR and SSIM on random 256 x 256 crops and on whole
sections, plus the plain average of the neighbours as a baseline. The time per 1024 x 1024
pair is measured on a section tiled to that size: the whole reference (two flows, two warps
and the blend) and one flow alone.

Usage (from the repository root)::

    .venv/bin/python benchmarks/compare_flow.py [--crops 60] [--repeats 3]

Test stacks only: isbi2012_test (spacing 1) and fibsem_medulla_ts1 z >= 200 (spacing 4).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_flowinpaint.engine import (
    FLOW_METHODS,
    initial_reference,
    initial_reference_unit,
    optical_flow,
)
from napari_flowinpaint.tasks.evaluation.metrics import psnr, ssim

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
#: name -> (file, spacing K, first z that may be sampled)
STACKS = {
    "isbi2012_test": (DATA / "isbi2012_test" / "raw.tif", 1, 0),
    "fibsem_medulla_ts1 (z>=200)": (DATA / "fibsem_medulla_ts1" / "raw.tif", 4, 200),
}


def _triplets(stack: np.ndarray, spacing: int, z0: int) -> list[int]:
    return list(range(z0 + spacing, stack.shape[0] - spacing))


def _score(stack, zs, windows, spacing, method):
    p, s = [], []
    for z, (y0, x0, size) in zip(zs, windows, strict=True):
        win = (slice(None), slice(None)) if size is None else \
            (slice(y0, y0 + size), slice(x0, x0 + size))
        prev = np.ascontiguousarray(stack[z - spacing][win])
        truth = stack[z][win]
        nxt = np.ascontiguousarray(stack[z + spacing][win])
        if method == "average":
            ref = np.rint((prev.astype(np.float64) + nxt) / 2).astype(truth.dtype)
        else:
            ref = initial_reference(prev, nxt, method=method)
        p.append(psnr(truth, ref, data_range=255))
        s.append(ssim(truth, ref, data_range=255))
    return float(np.mean(p)), float(np.mean(s))


def _tiled(section: np.ndarray, size: int = 1024) -> np.ndarray:
    reps = (-(-size // section.shape[0]), -(-size // section.shape[1]))
    return np.ascontiguousarray(np.tile(section, reps)[:size, :size])


def _time_pair(stack, z, spacing, method, repeats):
    a = _tiled(stack[z - spacing]).astype(np.float32) / 255
    b = _tiled(stack[z + spacing]).astype(np.float32) / 255
    initial_reference_unit(a, b, method=method)  # warm-up
    ref_times, flow_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        initial_reference_unit(a, b, method=method)
        ref_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        optical_flow(a, b, method=method)
        flow_times.append(time.perf_counter() - t0)
    return float(np.median(ref_times)), float(np.median(flow_times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=60, help="random 256^2 crops per stack")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = []
    for name, (path, spacing, z0) in STACKS.items():
        if not path.exists():
            print(f"skipping {name}: {path} not found", file=sys.stderr)
            continue
        stack = tifffile.imread(path)
        zs_all = _triplets(stack, spacing, z0)
        rng = np.random.default_rng(args.seed)
        size = min(256, *stack.shape[1:])
        zs = [int(rng.choice(zs_all)) for _ in range(args.crops)]
        crops = [(int(rng.integers(0, stack.shape[1] - size + 1)),
                  int(rng.integers(0, stack.shape[2] - size + 1)), size) for _ in zs]
        whole = [(0, 0, None)] * len(zs_all)
        for method in ("average", *FLOW_METHODS):
            print(f"{name}: {method} ...", file=sys.stderr, flush=True)
            pc, sc = _score(stack, zs, crops, spacing, method)
            pw, sw = _score(stack, zs_all, whole, spacing, method)
            t = (_time_pair(stack, zs_all[len(zs_all) // 2], spacing, method, args.repeats)
                 if method != "average" else (float("nan"), float("nan")))
            rows.append((name, spacing, method, pc, sc, pw, sw, *t, len(zs), len(zs_all)))
    print("| stack | K | reference | PSNR crops | SSIM crops | PSNR whole | SSIM whole "
          "| s per 1024^2 pair (reference) | s (one flow) | crops / sections |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, k, m, pc, sc, pw, sw, t, tf, nc, nw in rows:
        ts = "-" if np.isnan(t) else f"{t:.3f}"
        tfs = "-" if np.isnan(tf) else f"{tf:.3f}"
        print(f"| {name} | {k} | {m} | {pc:.2f} | {sc:.4f} | {pw:.2f} | {sw:.4f} | {ts} "
              f"| {tfs} | {nc} / {nw} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
