"""Speed and memory of ``FlowInpainter().inpaint`` on big sections.

For each section size (1024^2 and 4096^2 by default) and damaged fraction (2, 10 and 30 %,
irregular blobs from :func:`napari_flowinpaint.tasks.simulation.random_mask`) it prints the median
wall time of 5 calls (after one warm-up call) and the peak memory of one call:

* ``numpy peak``: the peak of Python/numpy allocations traced by :mod:`tracemalloc`;
* ``RSS peak``: the peak resident memory above the level before the call, sampled every
  2 ms by a thread with psutil (which also sees torch and OpenCV buffers); without psutil,
  the growth of ``ru_maxrss`` (only shows when a call beats all earlier peaks).

The sections are three consecutive slices of the ISBI 2012 training stack (ssTEM, 512^2)
mirror-tiled to the wanted size, so the texture and the optical flow are real; without
``../shared/data`` an EM-like synthetic texture moved by a smooth warp is used instead.

Run from the repository root::

    .venv/bin/python benchmarks/bench_repair.py [--sizes 1024 4096] [--repeats 5]
        [--load 2] [--json benchmarks/results/bench_repair.json]

``--load N`` starts N busy processes (a plain Python loop each) for the whole run: the machine
of a user running napari, a browser and a sync client, or a shared cluster node. ``--json``
writes the rows.

``FlowInpainter()`` runs all three stages (bundled weights, the default textured repair); a
second line gives the median seconds of each part (``RepairReport.timings``: the optical
flow, the two networks, the texture, the rest as overhead) and the seconds per damaged
megapixel. Targets on 2 CPU cores: a
1024^2 section with a 30 % mask in <= 2.0 s and a 2048^2 section with a 2 % mask in <= 0.5 s
(``--sizes 1024 2048``); the optical-flow stage alone (``--stages initial_reference``) was
held to <= 0.3 s for 1024^2 at 30 %.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

from napari_flowinpaint import FlowInpainter
from napari_flowinpaint.tasks.simulation import apply_damage, random_mask

ROOT = Path(__file__).resolve().parents[1]
ISBI = ROOT.parent / "shared" / "data" / "isbi2012_train" / "raw.tif"
#: (size, damaged fraction, seconds) for all stages, and for the optical-flow stage alone
TARGETS = {"guided_inpainting": [(1024, 0.30, 2.0), (2048, 0.02, 0.5)],
           "initial_reference": [(1024, 0.30, 0.3)]}


def _tile(section: np.ndarray, size: int) -> np.ndarray:
    """Mirror-tile a section to ``size`` x ``size`` (no seams: each copy is reflected)."""
    h, w = section.shape
    reps = (-(-size // h), -(-size // w))
    rows = [np.concatenate([section if j % 2 == 0 else section[:, ::-1] for j in
                            range(reps[1])], axis=1) for _ in range(reps[0])]
    big = np.concatenate([r if i % 2 == 0 else r[::-1] for i, r in enumerate(rows)], axis=0)
    return np.ascontiguousarray(big[:size, :size])


def _synthetic(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    base = ndi.gaussian_filter(rng.standard_normal((size + 16, size + 16)), 2.5)
    membranes = np.abs(base) < 0.02 * base.std() * 8  # thin dark curves, like membranes
    img = ndi.gaussian_filter(base, 1.0) * 0.3 + np.where(membranes, -1.0, 0.5)
    img = (img - img.min()) / np.ptp(img)
    shifts = ((0, 0), (1.5, 0.7), (3.0, 1.4))
    sections = [ndi.shift(img, s, order=1, mode="reflect")[8:-8, 8:-8] for s in shifts]
    return tuple(np.round(40 + 170 * s).astype(np.uint8) for s in sections)


def load_sections(size: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], str]:
    """(prev, truth, next) uint8 sections of ``size`` x ``size`` and where they come from."""
    if ISBI.exists():
        import tifffile

        with tifffile.TiffFile(ISBI) as tif:
            secs = [tif.pages[z].asarray() for z in (10, 11, 12)]
        return tuple(_tile(s, size) for s in secs), "ISBI 2012 train z=10,11,12, mirror-tiled"
    return _synthetic(size), "synthetic EM-like texture (../shared/data absent)"


class _RssSampler:
    """Peak resident memory above the starting level, sampled by a thread."""

    def __init__(self, period: float = 0.002):
        import psutil

        self.proc = psutil.Process()
        self.period = period
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.period)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def delta(self) -> int:
        return self.peak - self.base


def measure_memory(fn, *args) -> tuple[float, float, str]:
    """Call ``fn(*args)``; return (numpy peak MB, process peak MB above the start, how the
    latter was measured)."""
    tracemalloc.start()
    try:
        try:
            sampler = _RssSampler()
        except ImportError:
            sampler = None
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sampler is not None:
            with sampler:
                fn(*args)
        else:
            fn(*args)
        _, numpy_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if sampler is not None:
        return numpy_peak / 2**20, sampler.delta / 2**20, "RSS peak (psutil)"
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux
    return numpy_peak / 2**20, grew / 1024, "maxrss growth"


def bench(sizes, fractions, repeats: int, seed: int = 0,
          stages: str = "guided_inpainting") -> list[dict]:
    engine = FlowInpainter(device="cpu", stages=stages)
    rows = []
    for size in sizes:
        (prev, truth, nxt), source = load_sections(size)
        print(f"# {size}x{size} uint8 sections: {source}", flush=True)
        for frac in fractions:
            mask = random_mask((size, size), frac, np.random.default_rng(seed), kind="blobs")
            damaged = apply_damage(truth, mask)
            engine.inpaint(prev, damaged, nxt, mask)  # warm-up
            times, parts = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                out, report = engine.inpaint(prev, damaged, nxt, mask, return_report=True)
                times.append(time.perf_counter() - t0)
                parts.append(report.timings)
            np_mb, rss_mb, how = measure_memory(engine.inpaint, prev, damaged, nxt, mask)
            err = float(np.abs(out[mask].astype(np.int16) - truth[mask]).mean())
            y0, y1, x0, x1 = report.box
            row = {"size": size, "fraction": float(mask.mean()),
                   "median_s": statistics.median(times), "min_s": min(times),
                   "numpy_mb": np_mb, "rss_mb": rss_mb, "rss_how": how,
                   "box": f"{y1 - y0}x{x1 - x0}", "mae": err,
                   # median seconds of each part of the repair (RepairReport.timings)
                   "stages": {k: statistics.median(p.get(k, 0.0) for p in parts)
                              for k in sorted({k for p in parts for k in p})}}
            row["stages"]["overhead"] = max(0.0, row["median_s"] - sum(row["stages"].values()))
            row["s_per_damaged_mp"] = row["median_s"] / max(1e-9, mask.sum() / 1e6)
            rows.append(row)
            print(f"{size:>5}^2  mask {100 * row['fraction']:5.1f} %  "
                  f"median {row['median_s']:7.3f} s  (min {row['min_s']:.3f})  "
                  f"numpy peak {np_mb:7.1f} MB  {how} {rss_mb:7.1f} MB  "
                  f"box {row['box']}  MAE in mask {err:5.1f}", flush=True)
            print("        " + "  ".join(f"{k} {v:.3f}" for k, v in row["stages"].items())
                  + f"  ({row['s_per_damaged_mp']:.2f} s per damaged MP)", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.02, 0.10, 0.30])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own choice)")
    parser.add_argument("--load", type=int, default=0,
                        help="busy processes to start beside the benchmark (default 0)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--stages", default="guided_inpainting",
                        choices=["initial_reference", "refined_reference", "guided_inpainting"],
                        help="last stage to run (default: all three)")
    args = parser.parse_args(argv)
    import cv2
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__} ({torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}), OpenCV {cv2.__version__} "
          f"({cv2.getNumThreads()} threads), python {sys.version.split()[0]}, "
          f"{args.load} busy processes beside it")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.load)]
    try:
        rows = bench(args.sizes, args.fractions, args.repeats, stages=args.stages)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    if args.json is not None:
        args.json.write_text(json.dumps({
            "threads": torch.get_num_threads(), "load": args.load,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "stages": args.stages,
            "rows": rows}, indent=1) + "\n")
    for size, frac, limit in TARGETS.get(args.stages, []):
        hit = [r for r in rows if r["size"] == size and abs(r["fraction"] - frac) < 0.01]
        if hit:
            ok = hit[0]["median_s"] <= limit
            print(f"target {size}^2 with {100 * frac:.0f} % mask <= {limit} s: "
                  f"{'met' if ok else 'MISSED'} ({hit[0]['median_s']:.3f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
