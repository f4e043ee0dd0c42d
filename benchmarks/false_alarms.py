"""Clean sections flagged, per validation part, and pictures of the worst false alarms.

Every real section of each validation part is judged as ``evaluate-detection`` judges it
(the bundled detector, no adaptation, relative to the part, between up to two neighbours on
each side ``spacing`` sections away; the sections known to be damaged reported apart). Per
part it writes the sections flagged and, for each of their regions, its size and what sets
it apart from the neighbours at the same place (grey level, saturated pixels). For each part
with a false alarm (or with a picture from an earlier run, made again), a contact sheet of
the worst ones (largest region first): the region outlined in red on the section, and the
same place in the neighbours above and below, which the detector compares it with (the
known real defect of the part last, for comparison).

Run from the repository root::

    .venv/bin/python benchmarks/false_alarms.py

Writes ``benchmarks/results/false_alarms.json`` (``tables.py false-alarms`` renders it) and
``docs/images/false-alarms-<part>.png``. The leave-one-dataset-out rows are read from the
results of ``adapt_detection.py`` (the detectors that never saw each stack are not kept in
the repository, so there are no pictures of theirs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import tifffile
from eval_detection import MORE, STACKS

from napari_flowinpaint.tasks.detection import detect_damage, label_regions, normal_region_area
from napari_flowinpaint.tasks.evaluation.repair import parse_z_range
from napari_flowinpaint.tasks.io import SectionRange

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
IMAGES = ROOT / "docs" / "images"
#: short names of the parts (file names, table rows)
SHORT = {"isbi2012_test": "isbi2012", "fibsem_medulla_ts1": "fibsem", "callosum_sssem":
         "callosum", "cdeep3m_sbem": "cdeep3m"}
#: leave-one-dataset-out: the detector trained without the stack, on its validation part
#: (``adapt_detection.py``, its "before" rows): result file and the key in it
LODO = {"isbi2012": ("adapt_detection_relative", "isbi2012", "detector trained on the other "
                     "three"),
        "fibsem": ("adapt_detection_relative", "fibsem_medulla_ts1", "detector trained on the "
                   "other three"),
        "callosum": ("adapt_detection_lodo3_callosum", "callosum_sssem", "detector trained "
                     "on the other three"),
        "cdeep3m": ("adapt_detection_lodo3_cdeep3m", "cdeep3m_sbem", "detector trained on "
                    "the other three")}
PANEL = 200  # pixels of each picture in the sheet


def around(stack, z: int, start: int, stop: int, spacing: int):
    """Section z between its serial neighbours, up to 2 each side (as evaluate-detection)."""
    zs = [k for k in range(z - 2 * spacing, z + 2 * spacing + 1, spacing) if start <= k < stop]
    return np.stack([np.asarray(stack[k]) for k in zs]), zs.index(z), zs


def describe(section, neighbours, region) -> dict:
    """What sets a region apart: its size, box, grey level against the neighbours' at the
    same pixels, and its saturated pixels (at the section's own top grey level)."""
    ys, xs = np.nonzero(region)
    top = float(np.iinfo(section.dtype).max) if section.dtype.kind in "ui" else \
        float(section.max())
    grey = float(section[region].mean())
    around_grey = [float(n[region].mean()) for n in neighbours]
    return {"area": int(region.sum()),
            "box": [int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1],
            "grey": round(grey, 1), "neighbours_grey": [round(g, 1) for g in around_grey],
            "saturated": int((section[region] >= top - 0.02 * top).sum())}


def judge_part(name: str, path: Path, spacing: int, zr, known: list[int]) -> tuple:
    stack = tifffile.imread(path)
    start, stop = parse_z_range(zr, stack.shape[0])
    normal = normal_region_area(SectionRange(stack, start, stop, spacing))
    rows, pictures = [], []
    for z in range(start, stop):
        part, i, zs = around(stack, z, start, stop, spacing)
        mask = detect_damage(part, i, normal_area=normal)
        if not mask.any():
            continue
        near = [part[j] for j in (i - 1, i + 1) if 0 <= j < len(part)]
        n, labels, _ = label_regions(mask)
        regions = sorted((describe(part[i], near, labels == k) for k in range(1, n)),
                         key=lambda r: -r["area"])
        rows.append({"z": z, "known_damaged": z in known, "regions": regions,
                     "neighbours": [zs[j] for j in (i - 1, i + 1) if 0 <= j < len(part)]})
        pictures.append((z, z in known, regions[0], part, i, mask))
    clean = [z for z in range(start, stop) if z not in known]
    flagged = [r["z"] for r in rows if not r["known_damaged"]]
    return {"name": name, "z_range": [start, stop], "spacing": spacing, "normal_area": normal,
            "clean_sections": len(clean), "flagged": flagged,
            "flagged_fraction": len(flagged) / len(clean),
            "known_damaged": {str(z): z in [r["z"] for r in rows] for z in known},
            "sections": rows}, pictures


def crop(img: np.ndarray, box, side: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A square window around ``box`` (at least 96 px, at most the section) scaled to
    ``side``; the window's top, left and size."""
    y0, x0, y1, x1 = box
    h, w = img.shape
    size = int(min(max(96, 2.5 * max(y1 - y0, x1 - x0)), h, w))
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    top = int(np.clip(cy - size // 2, 0, h - size))
    left = int(np.clip(cx - size // 2, 0, w - size))
    win = img[top:top + size, left:left + size]
    return cv2.resize(win, (side, side), interpolation=cv2.INTER_AREA if size > side
                      else cv2.INTER_NEAREST), (top, left, size)


def to_grey8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    lo, hi = np.percentile(img, (0.5, 99.5))
    return np.clip((img - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)


def sheet(pictures, title: str, out: Path, *, worst: int = 4) -> None:
    """Rows of [section above | section, region outlined | section below], the false alarms
    with the largest region first, then the first known real defect (if flagged)."""
    false = sorted([p for p in pictures if not p[1]], key=lambda p: -p[2]["area"])[:worst]
    real = [p for p in pictures if p[1]][:1]
    rows = []
    for z, is_known, region, part, i, mask in false + real:
        cells = []
        for j in (i - 1, i, i + 1):
            if not 0 <= j < len(part):
                cells.append(np.full((PANEL, PANEL, 3), 255, np.uint8))
                continue
            img, (t, left, size) = crop(to_grey8(part[j]), region["box"], PANEL)
            rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            m = cv2.resize(mask[t:t + size, left:left + size].astype(np.uint8), (PANEL, PANEL),
                           interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            colour = (0, 0, 255) if j == i else (0, 200, 255)
            cv2.drawContours(rgb, contours, -1, colour, 2 if j == i else 1)
            cells.append(rgb)
        what = "real defect (known)" if is_known else "clean section flagged"
        sat = f", {region['saturated']} px saturated" if region["saturated"] else ""
        label = (f"z={z}: {what}, {region['area']} px{sat}; grey {region['grey']:.0f} vs "
                 + " / ".join(f"{g:.0f}" for g in region["neighbours_grey"]) + " above/below")
        strip = np.full((22, 3 * PANEL + 8, 3), 255, np.uint8)
        cv2.putText(strip, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
        gap = np.full((PANEL, 4, 3), 255, np.uint8)
        rows += [strip, np.hstack([cells[0], gap, cells[1], gap, cells[2]])]
    head = np.full((26, 3 * PANEL + 8, 3), 255, np.uint8)
    cv2.putText(head, title + ": above | flagged section | below", (4, 18),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(out), np.vstack([head, *rows]), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def lodo_rows() -> dict:
    out = {}
    for short, (stem, key, what) in LODO.items():
        path = RESULTS / f"{stem}.json"
        if not path.is_file():
            continue
        before = json.loads(path.read_text())[key]["before"]
        n = before["clean_sections"]
        out[short] = {"detector": what, "clean_sections": n,
                      "flagged": round(before["clean_flagged"] * n),
                      "flagged_fraction": before["clean_flagged"], "source": f"{stem}.json"}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=RESULTS / "false_alarms.json")
    ap.add_argument("--images", type=Path, default=IMAGES)
    args = ap.parse_args(argv)
    report = {"parts": {}, "leave_one_out": lodo_rows(),
              "settings": {"detector": "bundled", "relative": True, "min_area": 100,
                           "sensitivity": 0.5}}
    for name, (path, spacing, zr, known) in {**STACKS, **MORE}.items():
        short = SHORT[path.parent.name]
        res, pictures = judge_part(name, path, spacing, zr, known)
        image = args.images / f"false-alarms-{short}.png"
        if res["flagged"] or (pictures and image.is_file()):  # an old picture made again
            sheet(pictures, short, image)
            res["image"] = f"images/{image.name}"
        report["parts"][short] = res
        print(f"{short}: {len(res['flagged'])} of {res['clean_sections']} clean sections "
              f"flagged {res['flagged']}", flush=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
