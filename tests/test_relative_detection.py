"""Detection relative to what is normal for the stack: small regions that most healthy
sections of a stack show are not reported; damage still is; a clean stack is judged as
before."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from napari_flowinpaint.engine.weights import bundled_detector_path
from napari_flowinpaint.tasks.cli import main
from napari_flowinpaint.tasks.detection import detect_damage, detector, normal_region_area
from napari_flowinpaint.tasks.detection.detector import relative_min_area
from napari_flowinpaint.tasks.simulation import simulate_damage

SAMPLE = Path(__file__).parents[1] / "src" / "napari_flowinpaint" / "data" / \
    "fibsem_medulla_sample.tif"
pytestmark = pytest.mark.skipif(bundled_detector_path() is None,
                                reason="no bundled detector weights in weights/")


def _f1(found, truth):
    tp = np.count_nonzero(found & truth)
    p, r = tp / max(1, found.sum()), tp / max(1, truth.sum())
    return 2 * p * r / (p + r) if p + r else 0.0


@pytest.fixture(scope="module")
def stacks():
    """Ten real sections at 384^2; the same with a small dark blob (~200 px) in every
    section, at a different place each time (what the detector takes for a stain), and a
    hole in section 5 of both."""
    s = tifffile.imread(SAMPLE)[:10]
    clean = np.stack([cv2.resize(x, (384, 384), interpolation=cv2.INTER_CUBIC) for x in s])
    blobs = clean.copy()
    rng = np.random.default_rng(0)
    for z in range(len(blobs)):
        y, x = rng.integers(40, 340, 2)
        disc = np.zeros(blobs.shape[1:], np.uint8)
        cv2.circle(disc, (int(x), int(y)), 7, 1, -1)
        blobs[z][disc.astype(bool)] = 15
    clean[5], truth = simulate_damage(clean[5], "hole", 0)
    blobs[5] = clean[5]
    return clean, blobs, truth


def test_relative_min_area_doubles_the_normal_size_within_bounds():
    assert relative_min_area(100, 0, 1024 * 1024) == 100
    assert relative_min_area(100, 30, 1024 * 1024) == 100  # never below min_area
    assert relative_min_area(100, 800, 1024 * 1024) == 1600
    assert relative_min_area(100, 6000, 1024 * 1024) == 2622  # at most 0.25 % of a section
    assert relative_min_area(500, 100, 64 * 64) == 500


def test_regions_normal_for_the_stack_are_not_reported(stacks):
    clean, blobs, truth = stacks
    before = blobs.copy()
    absolute = detect_damage(blobs, relative=False)
    relative = detect_damage(blobs)
    np.testing.assert_array_equal(blobs, before)  # user data untouched
    others = [z for z in range(len(blobs)) if z != 5]
    flagged_abs = [z for z in others if absolute[z].any()]
    flagged_rel = [z for z in others if relative[z].any()]
    print("absolute", flagged_abs, "relative", flagged_rel)
    assert len(flagged_abs) >= 6  # the network takes the blobs for stains
    assert len(flagged_rel) <= 1
    area = normal_region_area(blobs)
    assert 100 < area < 600, area
    # the real damage is still found, as well as without the rule
    assert _f1(relative[5], truth) > 0.8 and _f1(absolute[5], truth) > 0.8


def test_when_the_first_sections_cannot_tell_more_are_judged():
    """16 sections; of the 9 judged first (1, 3, 4, 6, 8, 9, 11, 12, 14) only section 1
    shows a small dark blob (too few to call it normal), but the sections between them (2,
    5, 7, 10, 13) all do: judging those too finds the blobs normal for this stack."""
    s = tifffile.imread(SAMPLE)
    stack = np.stack([cv2.resize(x, (384, 384), interpolation=cv2.INTER_CUBIC) for x in s])
    rng = np.random.default_rng(4)  # places where the detector takes each blob for a stain
    for z in (1, 2, 5, 7, 10, 13):
        y, x = rng.integers(40, 340, 2)
        cv2.circle(stack[z], (int(x), int(y)), 9, 15, -1)
    first = sorted(set(np.linspace(1, 14, 9).round().astype(int).tolist()))
    assert first == [1, 3, 4, 6, 8, 9, 11, 12, 14]
    judged = []
    real = detector.iter_detect_damage

    def spy(stack, zs=None, **kw):
        judged.extend(zs)
        return real(stack, zs, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(detector, "iter_detect_damage", spy)
        area = normal_region_area(stack)
    assert sorted(judged) == sorted(first + [2, 5, 7, 10, 13])
    assert 100 < area < 600, area
    # one blob in the whole stack is not normal: looked at again, still nothing normal
    lone = np.stack([cv2.resize(x, (384, 384), interpolation=cv2.INTER_CUBIC) for x in s])
    lone[1] = stack[1]
    assert normal_region_area(lone) == 0


def test_a_clean_stack_is_judged_as_before(stacks):
    clean, _, truth = stacks
    assert normal_region_area(clean) == 0
    np.testing.assert_array_equal(detect_damage(clean), detect_damage(clean, relative=False))
    assert _f1(detect_damage(clean, 5), truth) > 0.8


def test_the_normal_area_is_measured_once_per_stack(stacks, monkeypatch):
    _, blobs, _ = stacks
    monkeypatch.setattr(detector, "NORMAL_AREAS", detector.NormalMemory())  # none known yet
    calls = []
    real = detector.normal_region_area
    monkeypatch.setattr(detector, "normal_region_area",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    view = blobs[:]
    first = detect_damage(view, 3)
    second = detect_damage(view, 3)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    # given, it is not measured; 0 turns the rule off for this call
    detect_damage(blobs[:], 3, normal_area=0)
    assert len(calls) == 1
    assert detect_damage(blobs[:], 3, normal_area=0).any()


def test_detect_command_is_relative_unless_told_absolute(stacks, tmp_path, capsys):
    _, blobs, _ = stacks
    src = tmp_path / "blobs.tif"
    tifffile.imwrite(src, blobs)
    assert main(["detect", str(src), "-o", str(tmp_path / "rel.tif"), "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "are not reported" in out.out + out.err
    assert main(["detect", str(src), "-o", str(tmp_path / "abs.tif"), "--absolute",
                 "--no-progress"]) == 0
    rel, ab = tifffile.imread(tmp_path / "rel.tif"), tifffile.imread(tmp_path / "abs.tif")
    assert (rel.reshape(len(rel), -1).max(1) > 0).sum() < (ab.reshape(len(ab), -1).max(1)
                                                           > 0).sum()
