"""The first run on a stack (learning what is normal for it, issue 29): the sections judged
in an order spread through the stack, no more judged when the first five agree, the same
area as judging them all where they do not, and what was learned remembered by the data's
content (a stack opened again is not judged again; a changed one is)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from napari_flowinpaint.engine.weights import bundled_detector_path
from napari_flowinpaint.tasks.detection import detector, iter_normal_region_area
from napari_flowinpaint.tasks.detection.normal import (
    AGREE,
    NormalMemory,
    first_agree,
    spread_order,
)
from napari_flowinpaint.tasks.fingerprints import section_digest
from napari_flowinpaint.tasks.simulation import simulate_damage

SAMPLE = Path(__file__).parents[1] / "src" / "napari_flowinpaint" / "data" / \
    "fibsem_medulla_sample.tif"
needs_weights = pytest.mark.skipif(bundled_detector_path() is None,
                                   reason="no bundled detector weights in weights/")


def test_spread_order_takes_the_middle_the_ends_then_between():
    assert spread_order(range(9)) == [4, 0, 8, 2, 6, 1, 3, 5, 7]
    assert spread_order([1, 3, 4, 6, 8, 9, 11, 12, 14])[:AGREE] == [8, 1, 14, 4, 11]
    for n in range(12):
        order = spread_order(range(n))
        assert sorted(order) == list(range(n))
    assert spread_order([5, 7]) == [5, 7]


def test_first_agree_when_none_shows_a_region_or_all_are_damaged():
    assert first_agree([0, 0, 0, 0, 0], 5)  # five typical sections, no region
    assert first_agree([], 5)  # five damaged sections
    assert not first_agree([0, 0, 0, 0], 5)  # one damaged among them
    assert not first_agree([0, 0, 120, 0, 0], 5)  # one shows a region
    assert not first_agree([], 0)


def test_memory_by_array_and_by_content():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (6, 16, 16), dtype=np.uint8)
    reads = {str(z): section_digest(a[z]) for z in (1, 2, 3)}
    mem = NormalMemory(limit=3)
    mem.remember(a, "meta", 420, reads)
    assert mem.known(a, "meta") == 420
    assert mem.known(a, "other options") is None
    copy = a.copy()  # another array, the same sections
    assert mem.known(copy, "meta") == 420
    copy[5] = 0  # a section that was not read: still the same
    assert mem.known(copy, "meta") == 420
    changed = a.copy()
    changed[2, 3, 3] ^= 1  # one pixel of a section read
    assert mem.known(changed, "meta") is None
    short = a[:2]  # not even holding the sections read
    assert mem.known(short, "meta") is None
    for k in range(4):  # older ones make way
        b = rng.integers(0, 255, (6, 16, 16), dtype=np.uint8)
        mem.remember(b, "meta", k, {"1": section_digest(b[1])})
    assert mem.known(a.copy(), "meta") is None


@pytest.fixture(scope="module")
def sample384():
    s = tifffile.imread(SAMPLE)
    return np.stack([cv2.resize(x, (384, 384), interpolation=cv2.INTER_CUBIC) for x in s])


def _judged(stack, monkeypatch, **kw):
    judged, steps = [], []
    real = detector.iter_detect_damage

    def spy(stack, zs=None, **k):
        judged.extend(zs)
        return real(stack, zs, **k)

    monkeypatch.setattr(detector, "iter_detect_damage", spy)
    it = iter_normal_region_area(stack, **kw)
    while True:
        try:
            steps.append(next(it))
        except StopIteration as stop:
            return judged, steps, stop.value


@needs_weights
def test_five_agreeing_sections_are_enough(sample384, monkeypatch):
    """16 clean sections: the first five judged (8, 1, 14, 4, 11) show nothing, so the
    other four of the nine are not judged; progress ends at 5 of 5."""
    judged, steps, area = _judged(sample384, monkeypatch)
    assert area == 0
    assert judged == [8, 1, 14, 4, 11]
    assert steps[-1] == (5, 5) and steps[0] == (1, 9)


@needs_weights
def test_five_damaged_sections_are_enough(sample384, monkeypatch):
    stack = sample384.copy()
    for z in range(len(stack)):
        stack[z], _ = simulate_damage(stack[z], "missing", z)
    judged, steps, area = _judged(stack, monkeypatch)
    assert area == 0 and len(judged) == AGREE and steps[-1] == (5, 5)


@needs_weights
def test_a_stack_opened_again_is_not_judged_again(sample384, monkeypatch):
    monkeypatch.setattr(detector, "NORMAL_AREAS", NormalMemory())
    calls = []
    real = detector.normal_region_area
    monkeypatch.setattr(detector, "normal_region_area",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    stack = sample384[:10]
    first = detector.detect_damage(stack, 4)
    again = detector.detect_damage(np.array(stack), 4)  # the same data read again
    assert len(calls) == 1
    np.testing.assert_array_equal(first, again)
    edited = np.array(stack)
    edited[4, 100:110, 100:110] = 0  # a section it read, changed: judged again
    detector.detect_damage(edited, 4)
    assert len(calls) == 2
