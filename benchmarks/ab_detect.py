"""Detection now against detection at an earlier commit, interleaved in one process (A, B,
B, A, ...), so that a busy machine slows both alike: the ratio of the medians (earlier / now)
is what to read, and whether the masks and the normal region sizes are the same.

The earlier ``tasks/detection`` package is read from git (``--against``, default the
commit before the current one) into a temporary folder and imported beside the current one
(the engine, the networks and the weights are the current ones for both)::

    .venv/bin/python benchmarks/ab_detect.py --against HEAD~3 --sizes 1024 2048 --repeats 5
    .venv/bin/python benchmarks/ab_detect.py --stack ../shared/data/callosum_sssem/raw.tif \\
        --z 36 50 --sizes 1024 2048 --json ab.json

Timed: one slice with its neighbours, a pass over ``--pass-sections`` sections, and a first
run (the stack's scale and level, then its normal region size). Wall and process CPU
seconds (CPU: all threads together) are reported; on a loaded machine the CPU ratio is the
steadier one.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from bench_detect import SAMPLE, make_stack

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "src/napari_flowinpaint/tasks/detection"


def load_at(commit: str, folder: Path):
    """``tasks.detection`` as it was at ``commit``, as ``napari_flowinpaint.tasks.<name>``."""
    import napari_flowinpaint.tasks  # noqa: F401 (the parent package of the copy)

    files = subprocess.run(["git", "ls-tree", "--name-only", commit, PACKAGE + "/"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    target = folder / "detection_then"
    target.mkdir()
    for f in files:
        text = subprocess.run(["git", "show", f"{commit}:{f}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
        (target / Path(f).name).write_text(text)
    name = "napari_flowinpaint.tasks.detection_then"
    spec = importlib.util.spec_from_file_location(name, target / "__init__.py",
                                                  submodule_search_locations=[str(target)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    for sub in ("evidence", "detector"):
        importlib.import_module(f"{name}.{sub}")
    return mod


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn):
    t0, c0 = time.perf_counter(), cpu()
    out = fn()
    return out, time.perf_counter() - t0, cpu() - c0


def first_run(pkg, stack):
    scale, level = pkg.evidence.stack_reference(stack)
    return pkg.detector.normal_region_area(stack, scale=scale, level=level)


def compare(variants: dict, stack: np.ndarray, *, repeats: int, passes: int) -> dict:
    jobs = {
        "slice": lambda d: d.detector.detect_damage(stack, 1, normal_area=0),
        "pass": lambda d: d.detector.detect_damage(stack[:passes], normal_area=0),
        "first_run": lambda d: first_run(d, stack),
    }
    runs = {"slice": repeats, "pass": max(1, repeats // 3), "first_run": max(1, repeats // 3)}
    out = {}
    for job, fn in jobs.items():
        times = {k: [] for k in variants}
        results = {}
        for r in range(runs[job]):
            for k in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
                results[k], wall, used = timed(lambda k=k, fn=fn: fn(variants[k]))
                times[k].append((wall, used))
        then, now = (np.array(times[k]) for k in variants)
        same = all(np.array_equal(results["then"], results[k]) for k in variants)
        per = passes if job == "pass" else 1
        out[job] = {
            "then_wall_s": round(float(np.median(then[:, 0])) / per, 4),
            "now_wall_s": round(float(np.median(now[:, 0])) / per, 4),
            "then_cpu_s": round(float(np.median(then[:, 1])) / per, 4),
            "now_cpu_s": round(float(np.median(now[:, 1])) / per, 4),
            "ratio_wall": round(float(np.median(then[:, 0]) / np.median(now[:, 0])), 2),
            "ratio_cpu": round(float(np.median(then[:, 1]) / np.median(now[:, 1])), 2),
            "same_result": bool(same), "runs": runs[job]}
        if job == "first_run":
            out[job]["normal_area"] = int(results["now"])
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", default="HEAD~1", help="the earlier commit (default HEAD~1)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--repeats", type=int, default=6, help="timed slices per variant")
    ap.add_argument("--pass-sections", type=int, default=6,
                    help="sections in the timed stack pass (default 6)")
    ap.add_argument("--stack", type=Path, default=None,
                    help="a stack file to pad or crop instead of the resized sample")
    ap.add_argument("--z", type=int, nargs=2, default=None, metavar=("START", "STOP"))
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from napari_flowinpaint.tasks import detection as now

    if args.stack is None:
        source, resize = tifffile.imread(SAMPLE), True
    else:
        source = tifffile.imread(args.stack)
        source, resize = (source if args.z is None else source[args.z[0]:args.z[1]]), False
    report = {"against": args.against, "source": str(args.stack or "sample (resized)"),
              "threads": args.threads, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"then": load_at(args.against, Path(tmp)), "now": now}
        for d in variants.values():  # load the network, outside the timing
            d.detector.detect_damage(source[:3, :128, :128], 1, normal_area=0)
        for side in args.sizes:
            stack = make_stack(source, side, resize=resize)
            row = compare(variants, stack, repeats=args.repeats, passes=args.pass_sections)
            report["sizes"][str(side)] = row
            for job, r in row.items():
                print(f"{side} {job:9s} then {r['then_wall_s']:.3f} s (cpu {r['then_cpu_s']:.3f})"
                      f"  now {r['now_wall_s']:.3f} s (cpu {r['now_cpu_s']:.3f})  ratio wall "
                      f"{r['ratio_wall']:.2f} cpu {r['ratio_cpu']:.2f}  same {r['same_result']}",
                      flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
