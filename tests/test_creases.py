"""The thin curved fold ("crease") of the damage simulation (issue 29: realistic folds)."""

import cv2
import numpy as np

from napari_flowinpaint.tasks.simulation import DAMAGE_KINDS, simulate_damage


def _tissue(size=384, seed=0):
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 3)
    return np.clip(140 + 400 * noise, 20, 235).astype(np.uint8)


def test_creases_are_thin_curved_dark_folds_with_the_tissue_beside_them_moved():
    assert DAMAGE_KINDS[-1] == "crease"  # new kinds go last: earlier kinds' draws keep
    img = _tissue()
    widths, bends = [], []
    for seed in range(12):
        damaged, mask = simulate_damage(img, "crease", seed)
        assert 0.002 < mask.mean() < 0.15
        # its width: twice the distance to its edge along its ridge (the centre line)
        dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
        ridge = mask & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))
        widths.append(2 * float(np.median(dist[ridge])))
        # darker than the tissue it covers (two layers, 30-60 % of their grey level)
        assert damaged[mask].mean() < 0.75 * img[mask].mean()
        # the tissue beside the fold is pulled in: pixels outside the fold change too
        outside = ~cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert np.abs(damaged.astype(float) - img)[outside].mean() > 5
        # curved: the main fold's pixels stray from their best straight line
        ys, xs = np.nonzero(mask)
        pts = np.stack([xs, ys], 1).astype(float)
        pts -= pts.mean(0)
        bends.append(float(np.linalg.svd(pts, compute_uv=False)[1] / np.sqrt(len(pts))))
    assert 1.5 <= min(widths) and max(widths) <= 1.4 * 24 + 2
    assert np.median(widths) < 12  # mostly thin: log-uniform over 2.5-24 px
    assert sum(b > 4 for b in bends) >= 6  # most bend by more than a few pixels


def test_creases_on_small_crops_are_scaled_down():
    img = _tissue(96)
    for seed in range(5):
        _, mask = simulate_damage(img, "crease", seed)
        dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
        assert 2 * dist.max() <= 24 * 96 / 256 * 1.4 + 2


def test_a_continuing_line_darkens_both_sections_about_the_same_place():
    from napari_flowinpaint.tasks.simulation import continuing_structure

    a, b = _tissue(seed=1), _tissue(seed=2)
    sa, sb = continuing_structure(a, b, 4, shape="line")
    da = a.astype(float) - sa
    db = b.astype(float) - sb
    assert sa.dtype == a.dtype and da.min() >= 0 and db.min() >= 0  # only darker
    la, lb = da > 10, db > 10
    assert 0.002 < la.mean() < 0.1 and 0.002 < lb.mean() < 0.1
    # the same line, moved by at most 2 % of the side: near each other everywhere
    near = cv2.dilate(lb.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    assert (la & near).sum() >= 0.8 * la.sum()
    with np.testing.assert_raises(ValueError):
        continuing_structure(a, b, 4, shape="stripes")
