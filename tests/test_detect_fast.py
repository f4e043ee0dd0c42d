"""The fast paths of detection give exactly what the plain computations they replace gave
(issue 29: detection speed). Each reference below is the earlier code, kept here."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from napari_flowinpaint.tasks.detection import (
    cues,
    detect_damage,
    detector,
    levels,
    postprocess,
    threads,
)
from napari_flowinpaint.tasks.simulation import simulate_damage

SAMPLE = (Path(__file__).resolve().parents[1] / "src" / "napari_flowinpaint" / "data"
          / "fibsem_medulla_sample.tif")


@pytest.fixture(scope="module")
def damaged():
    """The sample stack with a hole, a crack and a stain in three sections."""
    stack = tifffile.imread(SAMPLE)
    for z, kind in ((3, "hole"), (6, "crack"), (9, "stain")):
        stack[z], _ = simulate_damage(stack[z], kind, z)
    return stack


def plain_level(section):
    sub = np.asarray(section)[::2, ::2].astype(
        np.float64 if np.asarray(section).dtype.kind == "f" else np.float32)
    med = float(np.median(sub))
    return med, float(np.median(np.abs(sub - med)))


@pytest.mark.parametrize("dtype, top", [(np.uint8, 255), (np.uint16, 4000), (np.uint16, 65535)])
@pytest.mark.parametrize("shape", [(64, 64), (63, 65), (7, 3), (1, 1), (2, 1)])
def test_counted_median_and_deviation_are_the_sorted_ones(dtype, top, shape):
    rng = np.random.default_rng(shape[0] * 7 + top)
    for spread in (3, top):  # few grey levels (ties everywhere) and many
        a = np.clip(rng.normal(top / 2, spread, shape), 0, top).astype(dtype)
        assert levels._level(a) == plain_level(a)
    flat = np.full(shape, top // 3, dtype)
    assert levels._level(flat) == plain_level(flat)


def test_float_levels_are_unchanged(damaged):
    f = damaged[3].astype(np.float32) / 7
    assert levels._level(f) == plain_level(f)
    assert levels._level(f.astype(np.float64)) == plain_level(f.astype(np.float64))


def test_stack_reference_in_one_pass_matches_the_two_functions(damaged):
    for stack in (damaged, damaged.astype(np.float32) * 0.01 + 3, damaged[:2]):
        level = levels.stack_level(stack)
        assert levels.scale_and_level(stack) == (levels.stack_scale(stack, level), level)
        assert levels.scale_and_level(stack, levelled=False) == (levels.stack_scale(stack),
                                                                 level)
    constant = np.full((4, 32, 32), 9, np.uint8)
    assert levels.scale_and_level(constant) == (levels.stack_scale(constant, (9.0, 0.0)),
                                                levels.stack_level(constant))


def test_levelling_by_measured_numbers_is_levelling_by_like(damaged):
    like = (levels.match_neighbour(damaged[2], damaged[3]),
            levels.match_neighbour(damaged[4], damaged[3]))
    level = levels.stack_level(damaged)
    measured = levels.measure_level(like)
    for x in (like[0], damaged[3], like[1]):
        assert np.array_equal(levels.level_section(x, level, like=like),
                              levels.level_section(x, level, measured=measured))


def plain_pool2(f, how):
    h, w = f.shape
    f = np.pad(f, ((0, h % 2), (0, w % 2)), mode="edge")
    return how(f.reshape(f.shape[0] // 2, 2, f.shape[1] // 2, 2), axis=(1, 3))


@pytest.mark.parametrize("shape", [(64, 48), (63, 47), (5, 4)])
def test_pooling_is_the_reshaped_extreme(shape):
    f = np.random.default_rng(1).random(shape, dtype=np.float32)
    assert np.array_equal(cues._pool2(f, np.maximum), plain_pool2(f, np.max))
    assert np.array_equal(cues._pool2(f, np.minimum), plain_pool2(f, np.min))


def plain_bright_blank(section, neighbours, scale, *, far=0.1, near=True):
    lo, hi = scale
    u = (np.asarray(section, np.float32) - lo) / (hi - lo)
    g = cv2.GaussianBlur(u, (0, 0), 1.5)
    tops = []
    for n in neighbours:
        if n is None:
            continue
        t = cues._tissue_top(n, scale, near=near)
        tops.append(np.full(g[::2, ::2].shape, t, np.float32) if not near else t)
    m = cv2.GaussianBlur(u, (0, 0), 1.0)
    sd = np.sqrt(np.maximum(cv2.GaussianBlur(u * u, (0, 0), 1.0) - m * m, 0.0))
    flat = sd < 0.6 * float(np.median(sd[::2, ::2]))
    if tops:
        top = cv2.resize(np.max(tops, axis=0), (u.shape[1], u.shape[0]),
                         interpolation=cv2.INTER_NEAREST)
    else:
        top = np.full(u.shape, np.percentile(g[~flat], 99.9) if (~flat).any() else 1.0,
                      np.float32)
    bright = g > top + 0.02
    if not bright.any():
        return bright
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright.astype(np.uint8),
                                                           connectivity=8)
    area = stats[:, cv2.CC_STAT_AREA]
    inside = labels[bright]
    flat_count = np.bincount(inside, weights=flat[bright], minlength=n)
    excess = np.bincount(inside, weights=g[bright] - top[bright], minlength=n) / np.maximum(
        area, 1)
    keep = ((flat_count >= 0.3 * area) | (excess >= far)) & (area >= 16)
    keep[0] = False
    return keep[labels]


def test_bright_blank_and_hole_filling_are_unchanged(damaged):
    scale = levels.stack_scale(damaged)
    hole, crack = damaged[3], damaged[6]
    for sec, nbs in ((hole, (damaged[2], damaged[4])), (crack, (damaged[5], None)),
                     (hole, ()), (damaged[0], (damaged[1],))):
        for near in (True, False):
            found = cues.bright_blank(sec, nbs, scale, near=near)
            assert np.array_equal(found, plain_bright_blank(sec, nbs, scale, near=near))
    assert cues.bright_blank(hole, (damaged[2],), scale).sum() > 100  # the paths were taken
    # a neighbour's hole filled, with the section's brightest tissue given or not
    filled = cues.without_holes(hole, damaged[4], damaged[5], scale)
    holes = plain_bright_blank(hole, (damaged[4],), scale, near=False)
    holes = cv2.dilate(holes.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert holes.any() and np.array_equal(filled, np.where(holes, damaged[5], hole))
    top = cues.brightest_tissue(damaged[4], scale)
    assert np.array_equal(cues.without_holes(hole, damaged[4], damaged[5], scale, top=top),
                          filled)


def test_regions_are_labelled_and_selected_as_before():
    rng = np.random.default_rng(2)
    for level in (0.45, 0.5, 0.56, 2.0):
        mask = cv2.GaussianBlur(rng.random((120, 90), dtype=np.float32), (0, 0), 2) > level
        n, labels, area = cues.label_regions(mask)
        m, ref, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                            connectivity=8)
        assert n == m and np.array_equal(labels, ref)
        assert np.array_equal(area, stats[:, cv2.CC_STAT_AREA])
        keep = rng.random(n) < 0.5
        keep[0] = False
        assert np.array_equal(cues.select_regions(labels, keep, mask), keep[labels])


def plain_odd_neighbour(far, near, section, labels, *, margin=1.25):
    def standard(x):
        return (x - x.mean()) / max(float(x.std()), 1e-6)

    a, b, c = (standard(np.asarray(x, np.float32)) for x in (far, near, section))
    flat = labels.ravel()
    n = int(flat.max()) + 1

    def per_label(u, v):
        return np.bincount(flat, weights=np.abs(u - v).ravel(), minlength=n)

    ab, bc, ac = per_label(a, b), per_label(b, c), per_label(a, c)
    odd = ab + bc >= margin * np.maximum(ab + ac, bc + ac)
    odd[0] = False
    return odd


def test_odd_neighbour_over_the_regions_pixels_is_unchanged(damaged):
    rng = np.random.default_rng(3)
    for level in (0.5, 0.53, 2.0):
        mask = cv2.GaussianBlur(rng.random(damaged.shape[1:], dtype=np.float32), (0, 0),
                                3) > level
        labels = cues.label_regions(mask)[1]
        for trio in ((damaged[1], damaged[2], damaged[3]), (damaged[5], damaged[6],
                                                            damaged[4])):
            assert np.array_equal(postprocess.odd_neighbour(*trio, labels),
                                  plain_odd_neighbour(*trio, labels))


def test_in_order_keeps_the_order_and_raises_in_turn():
    def slow_square(x):
        time.sleep(0.01 * (3 - x % 3))  # later items finish first
        return x * x

    assert list(threads.in_order(slow_square, range(7))) == [x * x for x in range(7)]
    assert list(threads.in_order(slow_square, range(4), at_once=1)) == [0, 1, 4, 9]

    def bad(x):
        if x == 3:
            raise ValueError("three")
        return x

    got = []
    with pytest.raises(ValueError, match="three"):
        for v in threads.in_order(bad, range(6)):
            got.append(v)
    assert got == [0, 1, 2]


def test_stopping_drops_the_sections_not_started():
    started = []

    def slow(x):
        started.append(x)
        time.sleep(0.05)
        return x

    it = threads.in_order(slow, range(20), at_once=2)
    assert next(it) == 0
    it.close()  # a cancel
    time.sleep(0.3)
    assert sorted(started) == list(range(len(started))) and len(started) <= 3


def test_two_sections_at_once_give_the_masks_of_one_at_a_time(damaged, monkeypatch):
    at_once = []
    monkeypatch.setattr(detector, "sections_at_once", lambda n, px: at_once[-1])
    results, stack = [], damaged[2:11]  # the hole, the crack and the stain: 1, 4 and 7
    for k in (1, 2):
        at_once.append(k)
        results.append((detect_damage(stack, relative=False),
                        detect_damage(stack.astype(np.float32) / 3, relative=False),
                        detector.normal_region_area(stack)))
    assert results[0][0][[1, 4, 7]].any(axis=(1, 2)).all()
    for one, two in zip(*results, strict=True):
        assert np.array_equal(one, two)
    assert threads.sections_at_once(1, 100) == 1
    assert threads.sections_at_once(5, threads.AT_ONCE_PIXELS + 1) == 1
