"""The tables of the documentation, made from the JSON the benchmark scripts write.

One source of truth for numbers: no table in the README or in ``docs/`` is typed by hand.
A page asks for a table with a line ``<!-- table: NAME -->`` (the documentation build,
``docs/hooks.py``, puts the table there); the README holds each of its tables between
``<!-- begin table: NAME -->`` and ``<!-- end table -->``, rewritten by::

    python benchmarks/tables.py --readme     # after a new benchmark run
    python benchmarks/tables.py NAME         # print one table

and ``tests/test_docs.py`` fails when the README's copy differs from what the JSON gives.
Only the standard library is used, so the documentation builds without torch.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from tables_detect import detect_speed, detection_summary, false_alarms

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"

#: the classical baselines a learned repair must stay ahead of
CLASSICAL = ("average", "telea", "biharmonic", "flow")
RATIOS = (0.3, 0.5)
#: The realism issue's targets for a default repair, per part and ratio: PSNR at least this
#: far ahead of the best classical baseline, sharpness and grain within these bounds, and
#: the membrane F1 at least this share of the undamaged section's.
TARGETS = {"psnr_margin": 0.5, "texture": (0.8, 1.25), "membrane_share": 0.9}


def load(name: str) -> dict:
    """``benchmarks/results/NAME.json``."""
    return json.loads((RESULTS / f"{name}.json").read_text())


# -- realism (benchmarks/eval_realism.py) ----------------------------------------------------

def margin(res: dict, method: str, k: str) -> float:
    """PSNR of ``method`` minus the best classical baseline's, at ratio key ``k``."""
    best = max(res[c][k]["psnr"] for c in CLASSICAL if c in res)
    return res[method][k]["psnr"] - best


def targets_met(report: dict, method: str) -> dict:
    """How many (part, ratio) cells meet each target of :data:`TARGETS`, out of how many:
    the numbers a campaign's candidate must improve on (without losing a PSNR cell) to be
    promoted."""
    lo, hi = TARGETS["texture"]
    met = {"psnr": 0, "sharpness": 0, "grain": 0, "membrane": 0, "cells": 0, "membrane_cells": 0}
    for res in report["parts"].values():
        if method not in res:
            continue
        for k, row in res[method].items():
            met["cells"] += 1
            met["psnr"] += margin(res, method, k) >= TARGETS["psnr_margin"]
            met["sharpness"] += lo <= row["sharpness"] <= hi
            met["grain"] += lo <= row["grain"] <= hi
            if row.get("membrane_f1") is not None:
                met["membrane_cells"] += 1
                met["membrane"] += (row["membrane_f1"]
                                    >= TARGETS["membrane_share"] * row["membrane_f1_undamaged"])
    return met


def realism_full(report: dict) -> str:
    """One table per validation part; the best classical PSNR and each method's margin."""
    lines = []
    for part, res in report["parts"].items():
        lines += [f"### {part}", "",
                  "| method | ratio | PSNR | vs best classical | PSNR hole | SSIM | FSIM | "
                  "sharpness | grain | membrane F1 (undamaged) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for k in [f"{r:g}" for r in RATIOS]:
            best = max(res[c][k]["psnr"] for c in CLASSICAL if c in res)
            for m, rows in res.items():
                r = rows[k]

                def f(v, d=3):
                    return "n/a" if v is None else f"{v:.{d}f}"

                mf1 = ("" if r["membrane_f1"] is None else
                       f"{f(r['membrane_f1'])} ({f(r['membrane_f1_undamaged'])})")
                lines.append(
                    f"| {m} | {k} | {f(r['psnr'], 2)} | {r['psnr'] - best:+.2f} | "
                    f"{f(r['psnr_hole'], 2)} | {f(r['ssim'])} | {f(r['fsim'])} | "
                    f"{f(r['sharpness'], 2)} | {f(r['grain'], 2)} | {mf1} |")
        lines.append("")
    return "\n".join(lines)


def realism_summary(report: dict, methods=("textured", "faithful")) -> str:
    """Per part and ratio, each method's PSNR margin over the best classical baseline,
    sharpness / grain, the membrane F1 where there are labels, and the targets met."""
    first = next(iter(report["parts"].values()))
    methods = tuple(m for m in methods if m in first) or tuple(
        m for m in report["config"]["methods"] if m not in CLASSICAL and m != "refined")
    scored = [m for m in ("flow", "refined") + methods if m in first]
    head = "| validation part | ratio | " + " | ".join(
        f"{m}: PSNR vs best classical, sharpness / grain" for m in methods) + \
        " | membrane F1: " + ", ".join(["undamaged", *scored]) + " |"
    lines = [head, "|---|---|" + "---|" * len(methods) + "---|"]
    for part, res in report["parts"].items():
        for k in [f"{r:g}" for r in RATIOS]:
            cells = [f"{margin(res, m, k):+.2f} dB, {res[m][k]['sharpness']:.2f} / "
                     f"{res[m][k]['grain']:.2f}" for m in methods if m in res]
            mf1 = ""
            if res[methods[0]][k].get("membrane_f1") is not None:
                mf1 = ", ".join(f"{v:.2f}" for v in
                                [res[methods[0]][k]["membrane_f1_undamaged"]]
                                + [res[m][k]["membrane_f1"] for m in scored])
            lines.append(f"| {part} | {float(k):.0%} | " + " | ".join(cells) + f" | {mf1} |")
    lines += ["", "Targets met (cells of part x ratio): PSNR >= +0.5 dB over the best classical "
              "baseline, sharpness and grain in [0.8, 1.25], membrane F1 >= 0.9 of the "
              "undamaged section's:", ""]
    for m in report["config"]["methods"]:
        if m in CLASSICAL or m == "refined":
            continue
        t = targets_met(report, m)
        lines.append(f"- {m}: PSNR {t['psnr']}/{t['cells']}, sharpness {t['sharpness']}/"
                     f"{t['cells']}, grain {t['grain']}/{t['cells']}, membrane "
                     f"{t['membrane']}/{t['membrane_cells']}")
    return "\n".join(lines) + "\n"


def quality(report: dict) -> str:
    """The README's short table: per validation part, the default (textured) and the
    faithful repair's lead over the best classical baseline and the textured sharpness."""
    lines = ["| validation part (never trained on) | default repair: PSNR lead over the best "
             "classical method | sharpness (truth = 1) | faithful repair: PSNR lead |",
             "|---|---|---|---|"]
    for part, res in report["parts"].items():
        ks = [f"{r:g}" for r in RATIOS]
        lead = " / ".join(f"{margin(res, 'textured', k):+.1f} dB" for k in ks)
        sharp = " / ".join(f"{res['textured'][k]['sharpness']:.2f}" for k in ks)
        faith = " / ".join(f"{margin(res, 'faithful', k):+.1f} dB" for k in ks)
        lines.append(f"| {part} | {lead} | {sharp} | {faith} |")
    ratios = " / ".join(f"{r:.0%}" for r in RATIOS)
    n = report["config"]["samples_per_ratio"]
    lines += ["", f"*{ratios} of a 256 px crop damaged, {n} crops per ratio "
              "(`benchmarks/eval_realism.py`).*"]
    return "\n".join(lines) + "\n"


def candidates(report: dict) -> str:
    """Candidate weights side by side: PSNR lead over the best classical baseline (least and
    mean over the parts and ratios), texture, and the membrane F1 of the downstream check."""
    parts = report["parts"]
    lines = ["| repair | PSNR lead, least / mean | sharpness | grain | membrane F1, 30 / 50 % "
             "| ahead everywhere |", "|---|---|---|---|---|---|"]
    for m in report["config"]["methods"]:
        if m in CLASSICAL:
            continue
        leads, sharp, grain = [], [], []
        for res in parts.values():
            for k, row in res[m].items():
                leads.append(margin(res, m, k))
                sharp.append(row["sharpness"])
                grain.append(row["grain"])
        f1 = [parts["isbi2012_train"][m][str(r)]["membrane_f1"] for r in RATIOS] \
            if "isbi2012_train" in parts else []
        label = report["config"].get("labels", {}).get(m, m)
        lines.append(f"| {label} | {min(leads):+.2f} / {sum(leads) / len(leads):+.2f} dB | "
                     f"{sum(sharp) / len(sharp):.2f} | {sum(grain) / len(grain):.2f} | "
                     + (" / ".join(f"{x:.3f}" for x in f1) if f1 else "") + " | "
                     + ("yes" if min(leads) > 0 else "no") + " |")
    lines += ["", f"*{report['config']['samples_per_ratio']} crops per part and ratio "
              "(`benchmarks/eval_realism.py --weights NAME=FILE`); sharpness and grain: means "
              "over the parts and ratios (the truth's = 1).*"]
    return "\n".join(lines) + "\n"


def membrane_ceiling(report: dict) -> str:
    """Membrane F1 in the hole of fills that need no network (a real neighbour copied in)
    beside the repairs, as a share of the undamaged section's (``membrane_ceiling.py``)."""
    res = report["results"]
    ks = list(next(iter(res.values())).keys())
    lines = ["| fill of the hole | " + " | ".join(
        f"{float(k):.0%}: membrane F1 (share of undamaged)" for k in ks) + " | PSNR |",
        "|---|" + "---|" * (len(ks) + 1)]
    for m, rows in res.items():
        cells = [f"{r['membrane_f1']:.2f} ({r['membrane_f1'] / r['membrane_f1_undamaged']:.2f})"
                 for r in (rows[k] for k in ks)]
        psnr = " / ".join(f"{rows[k]['psnr']:.2f}" for k in ks)
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {psnr} |")
    und = " / ".join(f"{next(iter(res.values()))[k]['membrane_f1_undamaged']:.2f}" for k in ks)
    lines += ["", f"*{report['part']}, {report['samples_per_ratio']} crops per ratio; the "
              f"undamaged sections score {und}.*"]
    return "\n".join(lines) + "\n"


# -- the evaluation harness (napari-flowinpaint evaluate --json) -----------------------------

def evaluation(report: dict) -> str:
    """Method x ratio: PSNR / PSNR hole / SSIM / FSIM / sharpness; the best PSNR in bold."""
    res = report["results"]
    ratios = list(next(iter(res.values())).keys())
    best = {k: max(res[m][k]["psnr"] for m in res) for k in ratios}
    lines = ["| method | " + " | ".join(f"{float(k):.0%}" for k in ratios) + " |",
             "|---|" + "---|" * len(ratios)]
    for m, rows in res.items():
        cells = []
        for k in ratios:
            r = rows[k]
            p = f"{r['psnr']:.2f}"
            p = f"**{p}**" if r["psnr"] == best[k] else p
            cells.append(f"{p} / {r['psnr_hole']:.2f} / {r['ssim']:.3f} / {r['fsim']:.3f} / "
                         f"{r['sharpness']:.2f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    cfg = report["config"]
    lines += ["", f"*PSNR / PSNR in the hole / SSIM / FSIM / sharpness; {cfg['samples']} "
              f"crops of {cfg['crop']} px per ratio, neighbours {cfg['spacing']} section(s) "
              f"away, sections {cfg['z_range']} of `{Path(cfg['data']).parent.name}`.*"]
    return "\n".join(lines) + "\n"


def lodo(report: dict) -> str:
    """Leave-one-dataset-out: PSNR at each ratio for each set of weights (``compare_weights``)."""
    lines = []
    for part, res in report["results"].items():
        ratios = list(next(iter(res.values())).keys())
        lines += [f"| {part}: weights | " + " | ".join(f"{float(k):.0%}" for k in ratios)
                  + " | mean |", "|---|" + "---|" * (len(ratios) + 1)]
        for name, rows in res.items():
            vals = [rows[k]["psnr"] for k in ratios]
            lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in vals)
                         + f" | {sum(vals) / len(vals):.2f} |")
        lines.append("")
    lines.append(f"*{report['samples']} crops per ratio.*")
    return "\n".join(lines) + "\n"


def adapt(report: dict) -> str:
    """Stacks a model never saw: PSNR at each ratio without and with ``finetune`` on the
    stack's training part (``benchmarks/adapt_inpainting.py``)."""
    names = {"bundled": "round 1 (never saw it)", "fine-tuned": "fine-tuned on its training part"}
    lines = []
    for stack, res in report.items():
        val = res["validation"]
        ratios = list(next(iter(val.values())).keys())
        lines += [f"| {stack} | " + " | ".join(f"{float(k):.0%}" for k in ratios) + " |",
                  "|---|" + "---|" * len(ratios)]
        for name, rows in val.items():
            lines.append(f"| {names.get(name, name)} | "
                         + " | ".join(f"{rows[k]['psnr']:.2f}" for k in ratios) + " |")
        held = res["train_held_out"]
        lines += ["", f"*`finetune`: {res['iterations']} iterations, "
                  f"{res['finetune_minutes']:.1f} min; its own held-out check "
                  f"{held['before']:.2f} -> {held['after']:.2f} dB in the hole.*", ""]
    return "\n".join(lines)


def confidence(report: dict) -> str:
    """The confidence map's calibration per validation part (``calibrate_confidence.py``)."""
    lines = ["| validation part | low/high MAE | Spearman | mean confidence | PSNR hole (dB) "
             "| samples |", "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['part']} | {r['ratio']:.2f} | {r['spearman']:.2f} | "
                     f"{r['mean_confidence']:.2f} | {r['psnr_hole']:.1f} | {r['n']} |")
    lines += ["", f"*The {report['mode']} repair, {report['samples_per_ratio']} samples per "
              "ratio (10, 30, 50 %) and stack.*"]
    return "\n".join(lines) + "\n"


def volume(report: dict) -> str:
    """Whole-volume runs: seconds and peak memory (``bench_volume.py --json``)."""
    lines = ["| run | seconds | peak memory (PSS) | summed RSS | notes |", "|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['run']} | {r['seconds']:.0f} | {r['pss_mb'] / 1024:.2f} GB | "
                     f"{r['rss_mb'] / 1024:.2f} GB | {r['notes']} |")
    lines += ["", f"*{report['sections']} x {report['side']} x {report['side']} uint8 zarr "
              f"volume, every 10th section damaged (5-20 %), all three stages, "
              f"{report['cores']} cores (`benchmarks/bench_volume.py --json`).*"]
    return "\n".join(lines) + "\n"


def formats_memory(report: dict) -> str:
    """Peak memory of a repair read lazily from each format (``bench_formats_memory.py``)."""
    z, y, x = report["stack"]
    lines = ["| input format | peak memory (RSS) | seconds |", "|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['format']} (`{r['input']}`) | {r['peak_rss_gb']:.2f} GB | "
                     f"{r['seconds']:.0f} |")
    same = "identical" if report["identical_outputs"] else "NOT identical"
    lines += ["", f"*`repair --workers 1` of {len(report['damaged_sections'])} damaged sections "
              f"of a {report['stack_gb']:.1f} GB stack ({z} x {y} x {x} uint8), output zarr, "
              f"engine included; outputs {same} (`benchmarks/bench_formats_memory.py`).*"]
    return "\n".join(lines) + "\n"


# -- speed (benchmarks/bench_repair.py --json) ------------------------------------------------

def _speed_key(r: dict) -> tuple:
    return r["size"], r.get("style", "blobs"), round(r["fraction"], 2)


def speed(report: dict) -> str:
    """Seconds per section by size, mask style and damage, idle and beside busy processes
    (and the idle rows of ``bench_repair_4096.json``, when there is one)."""
    rows = list(report["rows"])
    extra = RESULTS / "bench_repair_4096.json"
    if extra.exists():
        rows += [r for r in json.loads(extra.read_text())["rows"] if r["load"] == 0]
    loads = sorted({r["load"] for r in rows})
    busy = [x for x in loads if x > 0]
    by = {(_speed_key(r), r["load"]): r for r in rows}
    head = ["section", "damage", "idle"] + [f"beside {x} busy processes" for x in busy]
    head += ["idle, per damaged MP", "peak memory"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in (r for r in rows if r["load"] == 0):
        key = _speed_key(r)
        damage = "whole section" if key[1] == "whole" else f"{key[2]:.0%} {key[1]}"
        cells = [f"{r['size']}^2", damage, f"{r['median_s']:.2f} s"]
        for x in busy:
            other = by.get((key, x))
            cells.append(f"{other['median_s']:.2f} s ({other['median_s'] / r['median_s']:.1f}x)"
                         if other else "")
        cells += [f"{r['s_per_damaged_mp']:.2f} s", f"{r['rss_mb']:.0f} MB"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"*Median of {report.get('repeats', 'several')} repairs, {report['cpus']} "
              f"CPU cores, torch {report['torch']} on {report['threads']} threads, "
              f"OMP_WAIT_POLICY={report['omp_wait_policy']}; busy processes started by the "
              "benchmark; peak memory: RSS growth during one repair "
              "(`benchmarks/bench_repair.py --json`).*"]
    if report.get("targets"):
        lines += [""] + [f"* {t}" for t in report["targets"]]
    return "\n".join(lines) + "\n"


def speed_stages(report: dict) -> str:
    """Where the time of one repair goes, per stage (idle; 30 % damage and whole sections)."""
    rows = [r for r in report["rows"] if r["load"] == 0
            and (r.get("style") == "whole" or abs(r["fraction"] - 0.3) < 0.01)]
    stages = list(rows[0]["stages"])
    lines = ["| section, damage | total | " + " | ".join(s.replace("_", " ") for s in stages)
             + " |", "|---|---|" + "---|" * len(stages)]
    for r in rows:
        key = _speed_key(r)
        damage = "whole" if key[1] == "whole" else f"{key[2]:.0%} {key[1]}"
        lines.append(f"| {r['size']}^2, {damage} | {r['median_s']:.2f} s | "
                     + " | ".join(f"{r['stages'][s]:.2f} s" for s in stages) + " |")
    return "\n".join(lines) + "\n"


# -- detection (benchmarks/eval_detection.py) -------------------------------------------------

def detection(report: dict) -> str:
    """Pixel F1 per kind of simulated damage, and the sections flagged, per validation part."""
    kinds = list(next(iter(report.values()))["kinds"])
    lines = ["| validation part | " + " | ".join(kinds)
             + " | damaged sections flagged | clean sections flagged |",
             "|---|" + "---|" * (len(kinds) + 2)]
    for part, res in report.items():
        f1 = " | ".join(f"{res['kinds'][k]['f1']:.2f}" for k in kinds)
        clean = res["clean"]
        n = clean["slices"]
        flagged = round(clean["flagged"] * n)
        lines.append(f"| {part} | {f1} | {res['damaged_flagged']:.0%} | "
                     f"{flagged} of {n} ({clean['flagged']:.0%}) |")
    return "\n".join(lines) + "\n"


def fold_margin(_=None) -> str:
    """Folds: how far their dark edges reach beyond the detected mask, the slivers of them
    each mask leaves (benchmarks/fold_margin.py), and the fold kind's pixel F1 without and
    with the fold margin (eval_detection.py --all --kinds fold, with --no-fold-margin)."""
    edges, band, grown = load("fold_margin"), load("detection_folds_band"), load("detection_folds")
    lines = ["| validation part | edges beyond the mask (95 %) | slivers left: mask as drawn "
             "| grown 2 px | fold margin | fold margin, grown 2 px | fold F1: as drawn -> "
             "with the margin |", "|---|---|---|---|---|---|---|"]
    for part, res in edges["stacks"].items():
        full = next(k for k in band if k.split()[0] == part.split()[0])
        slivers = " | ".join(f"{res[v]['slivers']:.0%}" for v in (
            "none", "grow 2 px", "fold margin", "fold margin, grow 2 px"))
        lines.append(f"| {part} | {res['none']['reach_p95']:.0f} px | {slivers} | "
                     f"{band[full]['kinds']['fold']['f1']:.3f} -> "
                     f"{grown[full]['kinds']['fold']['f1']:.3f} |")
    return "\n".join(lines) + "\n"


#: name -> (renderer, the JSON it reads, or None when the renderer reads its own)
TABLES = {
    "quality": (quality, "realism"),
    "realism-summary": (realism_summary, "realism"),
    "realism-full": (realism_full, "realism"),
    "grain-ablation": (lambda r: realism_summary(r, ("textured", "full grain")), "ablate_grain"),
    "membrane-ceiling": (membrane_ceiling, "membrane_ceiling"),
    "realism-candidates": (candidates, "realism_mix"),
    "realism-candidates-12000": (candidates, "realism_mix12000"),
    "evaluation-isbi": (evaluation, "eval_isbi"),
    "evaluation-fibsem": (evaluation, "eval_fibsem"),
    "lodo-isbi": (lodo, "lodo_inpainting_isbi"),
    "lodo-fibsem": (lodo, "lodo_inpainting_fibsem"),
    "adapt-inpainting": (adapt, "adapt_inpainting"),
    "confidence": (confidence, "confidence"),
    "confidence-faithful": (confidence, "confidence_faithful"),
    "volume": (volume, "bench_volume"),
    "formats-memory": (formats_memory, "bench_formats_memory"),
    "speed": (speed, "bench_repair"),
    "speed-stages": (speed_stages, "bench_repair"),
    "detection": (detection, "detection_confirmed"),
    "detection-summary": (detection_summary, "detection_confirmed"),
    "detect-speed": (detect_speed, None),
    "false-alarms": (false_alarms, "false_alarms"),
    "fold-margin": (fold_margin, None),
}


def render(name: str) -> str:
    """The markdown of table ``name`` (a key of :data:`TABLES`), from its JSON now."""
    if name not in TABLES:
        raise KeyError(f"no table named {name!r}; known: {', '.join(TABLES)}")
    fn, source = TABLES[name]
    return fn(load(source) if source else None)


BLOCK = re.compile(r"(<!-- begin table: ([\w-]+) -->\n)(.*?)(<!-- end table -->)", re.S)
MARKER = re.compile(r"^<!-- table: ([\w-]+) -->$", re.M)


def fill_blocks(text: str) -> str:
    """``text`` with every begin/end table block holding its table as the JSON gives it now."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group(2)) + m.group(4), text)


def fill_markers(text: str) -> str:
    """``text`` with every ``<!-- table: NAME -->`` line replaced by the table."""
    return MARKER.sub(lambda m: render(m.group(1)).rstrip("\n"), text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help=f"tables to print: {', '.join(TABLES)}")
    ap.add_argument("--readme", action="store_true",
                    help="rewrite the README's table blocks from the JSON")
    args = ap.parse_args(argv)
    if args.readme:
        text = README.read_text()
        new = fill_blocks(text)
        README.write_text(new)
        print("README.md: tables " + ("updated" if new != text else "already up to date"))
    for name in args.names:
        print(render(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
