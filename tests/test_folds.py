"""The fold margin: fold-like regions of a detected mask grow over the fold's dark edges,
other regions keep their mask; detection applies it by default (API and command line)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from napari_flowinpaint.engine.weights import bundled_detector_path
from napari_flowinpaint.tasks.cli import main
from napari_flowinpaint.tasks.detection import detect_damage, refine_mask
from napari_flowinpaint.tasks.detection.folds import (
    MIN_MARGIN,
    fold_reach,
    fold_regions,
    grow_folds,
)
from napari_flowinpaint.tasks.simulation import simulate_damage

SAMPLE = Path(__file__).parents[1] / "src" / "napari_flowinpaint" / "data" / \
    "fibsem_medulla_sample.tif"
needs_detector = pytest.mark.skipif(bundled_detector_path() is None,
                                    reason="no bundled detector weights in weights/")


@pytest.fixture(scope="module")
def sample():
    return tifffile.imread(SAMPLE)


def _tissue(shape=(160, 160), seed=0) -> np.ndarray:
    """Smooth random texture around grey 150 (+-15)."""
    noise = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3.0)
    return 150 + 15 * smooth / smooth.std()


def _distance_to(mask: np.ndarray) -> np.ndarray:
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)


def test_a_fold_with_soft_dark_edges_is_covered_to_where_half_its_darkening_is():
    """A band 20 px wide, darkened by 90 grey levels, its edges still darker over 6 px more
    (a linear ramp: half the darkening 3 px out); the detector's mask stops 1 px short of
    the band on each side. The fold margin covers the pixels darkened by two thirds or more
    and most of those darkened by half (bar where the tissue's texture, +-15, makes them
    lighter than half-way), and goes no further than its reach and margin."""
    across = np.abs(np.arange(160, dtype=np.float32) - 80)[None, :].repeat(160, 0)
    darkening = 90 * np.clip((16 - across) / 6, 0, 1)  # full inside |d| <= 10, 0 at 16
    section = np.clip(_tissue() - darkening, 0, 255).astype(np.uint8)
    found = across <= 9
    regions = fold_regions(found, section)
    assert len(regions) == 1 and regions[0][1] == pytest.approx(19, abs=1.5)  # its width
    grown = grow_folds(found, section)
    assert grown[darkening >= 60].mean() >= 0.99, grown[darkening >= 60].mean()
    assert grown[darkening >= 45].mean() >= 0.9, grown[darkening >= 45].mean()
    assert found[darkening >= 45].mean() <= 0.8
    reach = fold_reach(regions[0][1])
    assert not grown[across > 9 + reach + MIN_MARGIN + 0.5].any()
    assert grown.sum() > found.sum() + 2 * 160 * 3  # grown by 3 px or more on each side
    np.testing.assert_array_equal(found, across <= 9)  # the mask given is not modified


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_simulated_fold_masked_short_of_its_band_is_covered(sample, seed):
    damaged, band = simulate_damage(sample[6], "fold", seed)
    short = cv2.erode(band.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)  # 2 px in
    grown = grow_folds(short, damaged)
    assert np.count_nonzero(grown & band) >= 0.97 * band.sum()
    assert np.count_nonzero(short & band) < 0.9 * band.sum()
    (_, width), = fold_regions(short, damaged)
    assert _distance_to(short)[grown].max() <= fold_reach(width) + MIN_MARGIN + 1


def test_other_regions_keep_their_mask():
    """A dark round stain, a long bright crack and a long region over plain tissue are no
    folds: grow_folds leaves them, and a mask holding them and a fold grows the fold only."""
    section = _tissue((200, 200), seed=3)
    yy, xx = np.mgrid[0:200, 0:200]
    stain = (yy - 50) ** 2 + (xx - 50) ** 2 <= 15 ** 2
    crack = (np.abs(xx - 150) <= 4) & (yy >= 20) & (yy < 180)
    plain = (np.abs(yy - 150) <= 3) & (xx >= 10) & (xx < 120)
    section[stain] -= 80
    section[crack] = 250
    section = np.clip(section, 0, 255).astype(np.uint8)
    others = stain | crack | plain
    assert fold_regions(others, section) == []
    np.testing.assert_array_equal(grow_folds(others, section), others)
    fold = (np.abs(xx - 100) <= 5) & (yy >= 10) & (yy < 110)
    darker = section.copy()
    darker[np.abs(xx - 100) <= 7] = darker[np.abs(xx - 100) <= 7] // 3
    both = others | (fold & ~stain)
    grown = grow_folds(both, darker)
    np.testing.assert_array_equal(grown & ~_near(fold, 12), both & ~_near(fold, 12))
    assert grown.sum() > both.sum()
    assert not grow_folds(np.zeros((50, 50), bool), darker[:50, :50]).any()


def _near(mask: np.ndarray, distance: int) -> np.ndarray:
    return _distance_to(mask) <= distance


@needs_detector
def test_detection_gives_folds_their_margin_by_default(sample):
    """On real sections with a simulated fold, the default mask holds the mask without the
    margin and covers more of the band; a hole (no fold) gets the very same mask."""
    for seed in (4, 6, 7):  # on these 192 px crops the folds of seeds 0-3 are found in bits
        stack = sample[4:9].copy()
        stack[2], band = simulate_damage(sample[6], "fold", seed)
        # the network's mask alone: the thin-fold stage finds most of these bands itself
        plain = detect_damage(stack, 2, fold_margin=False, thin_folds=False)
        grown = detect_damage(stack, 2, thin_folds=False)
        assert not (plain & ~grown).any()
        np.testing.assert_array_equal(grown, refine_mask(plain, section=stack[2]))
        covered = np.count_nonzero(plain & band), np.count_nonzero(grown & band)
        assert covered[1] >= covered[0] + 0.05 * band.sum(), (seed, covered, band.sum())
    stack = sample[4:9].copy()
    stack[2], _ = simulate_damage(sample[6], "hole", 0)
    np.testing.assert_array_equal(detect_damage(stack, 2), detect_damage(stack, 2,
                                                                         fold_margin=False))


@needs_detector
def test_detect_command_gives_folds_their_margin_unless_told_not_to(sample, tmp_path):
    stack = sample[4:9].copy()
    stack[2], band = simulate_damage(sample[6], "fold", 4)
    tifffile.imwrite(tmp_path / "s.tif", stack)
    args = ["detect", str(tmp_path / "s.tif"), "--no-progress"]
    assert main([*args, "-o", str(tmp_path / "m.tif")]) == 0
    assert main([*args, "-o", str(tmp_path / "plain.tif"), "--no-fold-margin"]) == 0
    grown = tifffile.imread(tmp_path / "m.tif")[2] > 0
    plain = tifffile.imread(tmp_path / "plain.tif")[2] > 0
    assert not (plain & ~grown).any() and grown.sum() > plain.sum()
    np.testing.assert_array_equal(grown, detect_damage(stack, 2))


def test_a_wide_dark_region_is_judged_quickly_and_grows_at_most_max_reach():
    """A long region a hundred pixels wide (a large dark area the detector found) is
    judged without a dilation by its whole width (that took minutes on 2048^2 sections):
    its ring is at most MAX_RING wide, and it grows by at most MAX_REACH + MIN_MARGIN."""
    import time

    from napari_flowinpaint.tasks.detection.folds import MAX_REACH, MAX_RING

    section = _tissue((1024, 1024), seed=3)
    mask = np.zeros(section.shape, bool)
    mask[400:500, 20:1004] = True  # 100 px wide, 984 px long: fold-like by its shape
    section[mask] -= 60
    section[390:510, 10:1014][~mask[390:510, 10:1014]] -= 45  # dark edges beyond the mask
    t0 = time.perf_counter()
    grown = grow_folds(mask, section)
    assert time.perf_counter() - t0 < 5.0
    assert MAX_RING <= 2 * MAX_REACH
    assert (grown & ~mask).any() and not (mask & ~grown).any()
    assert float(_distance_to(mask)[grown].max()) <= MAX_REACH + MIN_MARGIN + 1.5
