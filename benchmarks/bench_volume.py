"""Whole-volume benchmark: parallel repair of a big zarr volume, memory, a cluster, resume.

Makes a Z x 2048 x 2048 uint8 zarr volume (tiles of the bundled FIB-SEM sample, shifted and
noised section by section) with every 10th section damaged (white blobs and bands, 5-20 % of
it), then times ``napari-flowinpaint repair`` as a user runs it (a subprocess each):

* with 1 and 2 local workers (the speed-up, timed in runs of their own), and the peak memory
  of the whole process tree (the command and its workers), sampled every 0.1 s in a second
  run of each (sampling takes CPU from the run: those times are printed in the notes);
* on a ``dask.distributed.LocalCluster`` of 2 worker processes reached with ``--scheduler``:
  the output must equal the local run's;
* killed (SIGKILL) halfway and run again: the output must equal an uninterrupted run's;
* optionally a 4x longer volume (``--long 800``): memory must not grow with the volume.

    python benchmarks/bench_volume.py [--sections 200] [--long 800] [--keep DIR]

Prints a Markdown table; ``--json FILE`` writes the rows, from which the documentation's
*Whole volumes* page takes its table (``benchmarks/tables.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from napari_flowinpaint.tasks.io import StackWriter, load_sample, read_stack
from napari_flowinpaint.tasks.simulation import random_mask

SIDE = 2048
PEAK_RSS: list[float] = []  # MB, one per run()


def make_volume(folder: Path, sections: int, seed: int = 0) -> tuple[Path, Path]:
    """The volume and its mask stack (zarr), written section by section."""
    sample, _ = load_sample()
    rng = np.random.default_rng(seed)
    reps = -(-SIDE // sample.shape[1])
    img_path, mask_path = folder / f"vol{sections}.zarr", folder / f"mask{sections}.zarr"
    with StackWriter(img_path, (sections, SIDE, SIDE), np.uint8) as img, \
            StackWriter(mask_path, (sections, SIDE, SIDE), np.uint8) as msk:
        for z in range(sections):
            base = np.tile(sample[z % len(sample)], (reps, reps))[:SIDE, :SIDE]
            section = np.roll(base, (z // len(sample), 2 * (z // len(sample))), axis=(0, 1))
            noise = rng.normal(0, 4, section.shape)
            section = np.clip(section + noise, 0, 255).astype(np.uint8)
            mask = np.zeros(section.shape, bool)
            if z % 10 == 5:
                mask = random_mask((SIDE, SIDE), rng.uniform(0.05, 0.2), rng,
                                   kind=("blobs", "bands")[z // 10 % 2])
                section[mask] = 255
            img[z], msk[z] = section, mask.astype(np.uint8)
    return img_path, mask_path


def run(argv: list[str], *, kill_after: float | None = None,
        threads: int | None = None, monitor: bool = True) -> tuple[float, float, int]:
    """Run the command; returns (seconds, peak MB of the process tree, exit code).

    With ``monitor=False`` memory is not sampled (the peak is returned as 0): reading the
    processes' memory takes CPU from the run itself, and on 2 cores busy with 2 workers that
    shows in the time. The timed rows below come from such runs.

    The peak is of the tree's summed proportional set size (PSS: a page shared by n
    processes, such as torch's libraries, counts 1/n in each), the memory the run takes
    from the machine; :data:`PEAK_RSS` keeps the summed resident sizes too (shared pages
    counted in every process). RSS is sampled every 0.1 s, PSS every 0.5 s."""
    env = dict(os.environ)
    if threads is not None:
        env["FLOWINPAINT_WORKER_THREADS"] = str(threads)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "napari_flowinpaint", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if not monitor:
        err = proc.communicate()[1]
        if proc.returncode != 0:
            print(err, file=sys.stderr)
        return time.perf_counter() - t0, 0.0, proc.returncode
    ps, peak, peak_rss, tick = psutil.Process(proc.pid), 0, 0, 0
    while proc.poll() is None:
        try:
            procs = [p for p in (ps, *ps.children(recursive=True)) if p.is_running()]
            peak_rss = max(peak_rss, sum(p.memory_info().rss for p in procs))
            if tick % 5 == 0:  # PSS costs ~10 ms a process (the kernel walks its pages)
                peak = max(peak, sum(p.memory_full_info().pss for p in procs))
        except psutil.Error:
            pass
        tick += 1
        if kill_after is not None and time.perf_counter() - t0 > kill_after:
            for p in ps.children(recursive=True):
                p.send_signal(signal.SIGKILL)
            proc.send_signal(signal.SIGKILL)
        time.sleep(0.1)
    PEAK_RSS.append(peak_rss / 2**20)
    err = proc.stderr.read()
    if proc.returncode not in (0, -9):
        print(err, file=sys.stderr)
    return time.perf_counter() - t0, peak / 2**20, proc.returncode


def same(a: Path, b: Path) -> bool:
    x, y = read_stack(a), read_stack(b)
    return all(np.array_equal(x[z], y[z]) for z in range(x.shape[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", type=int, default=200)
    ap.add_argument("--long", type=int, default=0, help="also a volume this long (e.g. 800)")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    ap.add_argument("--json", type=Path, default=None,
                    help="also write the rows here (e.g. benchmarks/results/bench_volume.json)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-volume-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        t0 = time.perf_counter()
        img, msk = make_volume(work, args.sections)
        print(f"made {img} in {time.perf_counter() - t0:.0f} s", flush=True)
        common = ["repair", str(img), "-m", str(msk), "--no-progress"]

        def timed(out: str, workers: int, threads: int | None = None) -> float:
            """Seconds of a run without memory sampling (its output is removed after)."""
            seconds = run([*common, "-o", str(work / out), "--workers", str(workers)],
                          threads=threads, monitor=False)[0]
            shutil.rmtree(work / out, ignore_errors=True)
            return seconds

        t0_, t1_, t2_ = timed("t0.zarr", 1), timed("t1.zarr", 1, 1), timed("t2.zarr", 2)
        s0, m0, _ = run([*common, "-o", str(work / "w0.zarr"), "--workers", "1"])
        rows.append((f"1 worker (this process, torch on {os.cpu_count()} threads)", t0_, m0,
                     PEAK_RSS[-1], ""))
        s1, m1, _ = run([*common, "-o", str(work / "w1.zarr"), "--workers", "1"], threads=1)
        rows.append(("1 worker, 1 thread", t1_, m1, PEAK_RSS[-1], ""))
        s2, m2, _ = run([*common, "-o", str(work / "w2.zarr"), "--workers", "2"])
        identical = same(work / "w1.zarr", work / "w2.zarr")
        rows.append(("2 local workers, 1 thread each", t2_, m2, PEAK_RSS[-1],
                     f"{t1_ / t2_:.2f}x the 1-thread worker, "
                     f"{t0_ / t2_:.2f}x the 2-thread process; "
                     f"output identical: {identical}; with memory sampled: "
                     f"{s0:.0f} / {s1:.0f} / {s2:.0f} s (1 worker / 1 thread / 2 workers)"))
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            s3, m3, _ = run([*common, "-o", str(work / "c.zarr"), "--scheduler",
                             cluster.scheduler_address])
        rows.append(("LocalCluster, 2 processes, --scheduler", s3, m3, PEAK_RSS[-1],
                     f"output identical: {same(work / 'w1.zarr', work / 'c.zarr')} "
                     "(cluster workers not counted in memory)"))
        sk, mk, code = run([*common, "-o", str(work / "k.zarr"), "--workers", "2"],
                           kill_after=s2 / 2)
        sr, mr, _ = run([*common, "-o", str(work / "k.zarr"), "--workers", "2"])
        rows.append(("2 workers, kill -9 halfway, then the same command", sr, mr, PEAK_RSS[-1],
                     f"killed at {sk:.0f} s (exit {code}); resumed output identical: "
                     f"{same(work / 'w1.zarr', work / 'k.zarr')}"))
        if args.long:
            img_l, msk_l = make_volume(work, args.long, seed=1)
            sl, ml, _ = run(["repair", str(img_l), "-m", str(msk_l), "--no-progress", "-o",
                             str(work / "long.zarr"), "--workers", "2"])
            rows.append((f"{args.long} sections, 2 local workers", sl, ml, PEAK_RSS[-1],
                         f"memory {ml / m2:.2f}x that of {args.sections} sections"))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.sections} x {SIDE} x {SIDE} uint8 zarr, every 10th section damaged "
          f"(5-20 %), all three stages, {os.cpu_count()} cores:\n")
    print("| run | seconds | peak memory, PSS (MB) | summed RSS (MB) | notes |\n"
          "|---|---|---|---|---|")
    for name, s, m, rss, note in rows:
        print(f"| {name} | {s:.0f} | {m:.0f} | {rss:.0f} | {note} |")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "sections": args.sections, "side": SIDE, "cores": os.cpu_count(),
            "rows": [{"run": name, "seconds": s, "pss_mb": m, "rss_mb": rss, "notes": note}
                     for name, s, m, rss, note in rows]}, indent=1))


if __name__ == "__main__":
    main()
