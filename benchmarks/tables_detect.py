"""The detection tables of the documentation that ``tables.py`` lists: speed
(``bench_detect.py --json``) and clean sections flagged per stack (``false_alarms.py``).
Only the standard library (the documentation builds without torch)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: bench_detect.py runs shown in the speed table: result file, what was timed
SPEED_RUNS = (("bench_detect", "bundled sample, resized"),
              ("bench_detect_callosum", "callosum_sssem z 36-50, mirror-padded"))


def detect_speed(_report=None) -> str:
    """Per run and size: one slice, per slice of a stack pass, the first run (sections
    judged) and the load of the machine while it ran."""
    lines = ["| sections | size | one slice with its neighbours | per slice, whole stack | "
             "first run on the stack (sections judged) | load average |",
             "|---|---|---|---|---|---|"]
    for stem, what in SPEED_RUNS:
        path = RESULTS / f"{stem}.json"
        if not path.is_file():
            continue
        rep = json.loads(path.read_text())
        load = rep["machine"]["load_average"][0]
        label = what + ("" if rep.get("fold_margin", True) else " (folds' margin off)")
        for side, r in rep["sizes"].items():
            lines.append(f"| {label} | {side}^2 | {r['slice_median_s']:.2f} s | "
                         f"{r['stack_pass_per_slice_s']:.2f} s | {r['first_run_s']:.1f} s "
                         f"({r['first_run_sections']}) | {load:.1f} |")
    rep = json.loads((RESULTS / f"{SPEED_RUNS[0][0]}.json").read_text())
    m = rep["machine"]
    lines += ["", f"*{m['cpus']} cores, torch {m['torch']} on {m['torch_threads']} threads "
              "(`benchmarks/bench_detect.py --json`); the load average is that of the "
              "minute before each run (other work on the machine).*"]
    return "\n".join(lines) + "\n"


def false_alarms(report: dict) -> str:
    """Per validation part: clean sections flagged by the bundled detector (which, and their
    largest region), and by the detector that never saw the stack (leave-one-dataset-out)."""
    lines = ["| stack (validation part) | bundled detector: clean sections flagged | flagged "
             "(largest region, saturated pixels) | detector that never saw the stack |",
             "|---|---|---|---|"]
    for short, p in report["parts"].items():
        n, k = p["clean_sections"], len(p["flagged"])
        which = []
        for s in p["sections"]:
            if s["known_damaged"]:
                continue
            r = s["regions"][0]
            which.append(f"{s['z']} ({r['area']} px, {r['saturated']})")
        lodo = report["leave_one_out"].get(short)
        other = ("" if lodo is None else
                 f"{lodo['flagged']} of {lodo['clean_sections']} "
                 f"({lodo['flagged_fraction']:.0%})")
        lines.append(f"| {short} | {k} of {n} ({k / n:.0%}) | {', '.join(which) or 'none'} | "
                     f"{other} |")
    lines += ["", "*`benchmarks/false_alarms.py` (relative to each part, as "
              "`evaluate-detection`); the last column from `adapt_detection.py`'s results "
              "(its detectors are not kept).*"]
    return "\n".join(lines) + "\n"


def detection_summary(report: dict) -> str:
    """The README's short detection table: per validation part, the clean sections flagged
    and the pixel F1 of a few kinds of simulated damage (``eval_detection.py --all``)."""
    kinds = [k for k in ("hole", "crack", "fold", "crease", "stain") if k in
             next(iter(report.values()))["kinds"]]
    lines = ["| validation part | clean sections flagged | " + " | ".join(
        f"{k} F1" for k in kinds) + " |", "|---|---|" + "---|" * len(kinds)]
    for part, res in report.items():
        n = res["clean"]["slices"]
        k = round(res["clean"]["flagged"] * n)
        f1 = " | ".join(f"{res['kinds'][c]['f1']:.2f}" for c in kinds)
        lines.append(f"| {part.split(' (')[0]} | {k} of {n} | {f1} |")
    samples = next(iter(report.values()))["settings"]["samples"]
    lines += ["", f"*{samples} simulated defects per kind and part "
              "(`benchmarks/eval_detection.py --all`); a crease is a thin curved fold.*"]
    return "\n".join(lines) + "\n"
