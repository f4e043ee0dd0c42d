"""Speed of damage detection: seconds per slice, per slice in a whole-stack pass, and the
first run on a new stack (learning what is normal for it), for square sections of each size.

Run from the repository root (nothing else running, for meaningful figures)::

    .venv/bin/python benchmarks/bench_detect.py --sizes 1024 2048 --repeats 5 --json out.json

The stack is the bundled sample (16 sections of 192^2 FIB-SEM, resized to each size, a hole
simulated in section 1) unless ``--stack`` names a stack file: its sections are then
mirror-padded or cropped to each size, at their own pixel size. JSON out: per size,
``slice_median_s`` (one slice judged with its neighbours, the stack's normal region size
already known: the median of ``--repeats``), ``stack_pass_per_slice_s`` (a whole-stack
pass), ``first_run_s`` (the stack's grey scale and level plus its normal region size, as
napari's Auto-detect does on a stack it has not seen; ``first_run_sections``: how many
sections it judged; ``normal_area``: the size found) and ``flagged_fraction`` (of the timed
slice). To compare with an earlier commit on a busy machine, see ``ab_detect.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import tifffile
import torch

from napari_flowinpaint.tasks.detection import (
    detect_damage,
    iter_normal_region_area,
    stack_reference,
)
from napari_flowinpaint.tasks.simulation import simulate_damage

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "napari_flowinpaint" / "data" / \
    "fibsem_medulla_sample.tif"


def make_stack(source: np.ndarray, side: int, *, resize: bool) -> np.ndarray:
    """``source`` (Z, H, W) at ``side`` x ``side``: resized (cubic), or mirror-padded and
    cropped; section 1 given a simulated hole."""
    out = []
    for s in source:
        if resize:
            s = cv2.resize(s, (side, side), interpolation=cv2.INTER_CUBIC)
        else:
            ph, pw = max(0, side - s.shape[0]), max(0, side - s.shape[1])
            s = np.pad(s, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)), mode="symmetric")
            y, x = (s.shape[0] - side) // 2, (s.shape[1] - side) // 2
            s = s[y:y + side, x:x + side]
        out.append(s)
    stack = np.stack(out)
    stack[1], _ = simulate_damage(stack[1], "hole", 0)
    return stack


def first_run(stack: np.ndarray) -> tuple[float, int, int]:
    """Seconds, sections judged and the normal region size of a first run on ``stack``."""
    t0 = time.perf_counter()
    scale, level = stack_reference(stack)
    steps = iter_normal_region_area(stack, scale=scale, level=level)
    judged = 0
    while True:
        try:
            judged, _ = next(steps)
        except StopIteration as stop:
            return time.perf_counter() - t0, judged, int(stop.value)


def bench_size(source, side: int, *, resize: bool, repeats: int,
               fold_margin: bool = True) -> dict:
    stack = make_stack(source, side, resize=resize)
    row: dict = {"sections": int(stack.shape[0])}
    row["first_run_s"], row["first_run_sections"], normal = first_run(stack)
    row["normal_area"] = normal
    opts = dict(normal_area=normal, fold_margin=fold_margin)
    detect_damage(stack, 1, **opts)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mask = detect_damage(stack, 1, **opts)
        times.append(time.perf_counter() - t0)
    row["slice_times_s"] = [round(t, 4) for t in times]
    row["slice_median_s"] = round(float(np.median(times)), 4)
    row["flagged_fraction"] = round(float(mask.mean()), 4)
    t0 = time.perf_counter()
    detect_damage(stack, **opts)
    row["stack_pass_per_slice_s"] = round((time.perf_counter() - t0) / len(stack), 4)
    return row


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048],
                    help="section sides in pixels (default 1024 2048)")
    ap.add_argument("--repeats", type=int, default=5, help="timed slices per size")
    ap.add_argument("--stack", type=Path, default=None,
                    help="a stack file to pad or crop instead of the resized sample")
    ap.add_argument("--z", type=int, nargs=2, default=None, metavar=("START", "STOP"),
                    help="sections of --stack to use (default all)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--no-fold-margin", action="store_true",
                    help="time detection without the folds' margin (detect_damage's "
                         "fold_margin=False; the first run never uses it)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.stack is None:
        source, resize = tifffile.imread(SAMPLE), True
    else:
        source, resize = tifffile.imread(args.stack), False
        if args.z is not None:
            source = source[args.z[0]:args.z[1]]
    out = {"machine": {"cpus": os.cpu_count(), "torch_threads": args.threads,
                       "load_average": list(os.getloadavg()), "python": platform.python_version(),
                       "torch": torch.__version__},
           "source": str(args.stack or "sample (resized)"),
           "fold_margin": not args.no_fold_margin, "sizes": {}}
    detect_damage(source[:3, :128, :128], 1, normal_area=0)  # loads the network
    for side in args.sizes:
        row = bench_size(source, side, resize=resize, repeats=args.repeats,
                         fold_margin=not args.no_fold_margin)
        out["sizes"][str(side)] = row
        print(f"{side}x{side}: one slice with its neighbours {row['slice_median_s']:.3f} s "
              f"(median of {args.repeats}); whole stack {row['stack_pass_per_slice_s']:.3f} s "
              f"per slice; first run {row['first_run_s']:.1f} s ({row['first_run_sections']} "
              "sections judged)", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
