"""The detection pages' tables come from the benchmark JSON (issue 29): first-run speed from
``bench_detect.py`` and clean sections flagged per stack from ``false_alarms.py``, whose
region description and picture are checked on a made-up section."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import false_alarms  # noqa: E402
import tables  # noqa: E402


def test_false_alarm_table_carries_the_json_numbers():
    report = tables.load("false_alarms")
    text = tables.render("false-alarms")
    for short, part in report["parts"].items():
        n, k = part["clean_sections"], len(part["flagged"])
        assert f"| {short} | {k} of {n} ({k / n:.0%}) |" in text
        for s in part["sections"]:
            if not s["known_damaged"]:
                assert f"{s['z']} ({s['regions'][0]['area']} px" in text
    for short, row in report["leave_one_out"].items():
        assert f"{row['flagged']} of {row['clean_sections']}" in text.split(f"| {short} |")[1]


def test_speed_table_carries_the_json_numbers():
    rep = tables.load("bench_detect")
    text = tables.render("detect-speed")
    for side, row in rep["sizes"].items():
        assert (f"| {side}^2 | {row['slice_median_s']:.2f} s | "
                f"{row['stack_pass_per_slice_s']:.2f} s | {row['first_run_s']:.1f} s "
                f"({row['first_run_sections']}) |") in text


def test_a_region_is_described_against_its_neighbours(tmp_path):
    section = np.full((120, 140), 100, np.uint8)
    above, below = section.copy(), np.full_like(section, 80)
    region = np.zeros(section.shape, bool)
    region[40:50, 60:80] = True
    section[region] = 240
    section[40, 60:80] = 255  # 20 saturated pixels
    r = false_alarms.describe(section, [above, below], region)
    assert r == {"area": 200, "box": [40, 60, 50, 80], "grey": 241.5,
                 "neighbours_grey": [100.0, 80.0], "saturated": 20}
    part = np.stack([above, section, below])
    out = tmp_path / "sheet.png"
    false_alarms.sheet([(7, False, r, part, 1, region)], "made up", out)
    img = cv2.imread(str(out))
    assert img.shape == (26 + 22 + false_alarms.PANEL, 3 * false_alarms.PANEL + 8, 3)
    red = (img[..., 2] > 200) & (img[..., 1] < 60) & (img[..., 0] < 60)
    middle = red[:, false_alarms.PANEL + 4:2 * false_alarms.PANEL + 4]
    assert middle.sum() > 50 and red.sum() == middle.sum()  # the outline, on the section only


def test_readme_detection_summary_carries_the_json_numbers():
    report = tables.load("detection_confirmed")
    text = tables.render("detection-summary")
    for part, res in report.items():
        n = res["clean"]["slices"]
        row = next(line for line in text.splitlines()
                   if line.startswith(f"| {part.split(' (')[0]} |"))
        assert f"| {round(res['clean']['flagged'] * n)} of {n} |" in row
        cells = row.split(" | ")[2:]
        assert [float(c.strip(" |")) for c in cells] == [
            round(res["kinds"][k]["f1"], 2) for k in ("hole", "crack", "fold", "crease", "stain")]
    assert text in (ROOT / "README.md").read_text()  # the README shows it as the JSON says
