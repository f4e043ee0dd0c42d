"""The full-resolution thin-fold stage: a thin dark band that only the section holds is
found; a line that continues into the neighbours, a short dark mark, a bent arc, or a band
without both neighbours to compare with is not."""

import cv2
import numpy as np

from napari_flowinpaint.tasks.detection import detect_damage
from napari_flowinpaint.tasks.detection.thinfolds import dark_ridges, thin_folds

SIZE = 256


def _tissue(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three neighbouring sections (float32, black 0, white 1): the same smooth texture,
    each with noise of its own."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.standard_normal((SIZE, SIZE)).astype(np.float32), (0, 0), 4)
    base = 0.55 + 0.12 * base / base.std()
    return tuple((base + 0.02 * rng.standard_normal(base.shape)).astype(np.float32)
                 for _ in range(3))


def _band(width: int, *, start=(0, 60), end=(SIZE, 200), shift: int = 0) -> np.ndarray:
    band = np.zeros((SIZE, SIZE), np.uint8)
    cv2.line(band, (start[0], start[1] + shift), (end[0], end[1] + shift), 1, thickness=width)
    return band.astype(bool)


def _darken(section: np.ndarray, band: np.ndarray, keep: float = 0.45) -> np.ndarray:
    return np.where(band, section * keep, section).astype(np.float32)


def test_thin_band_only_in_the_section_is_found():
    prev, sec, nxt = _tissue()
    band = _band(6)
    found = thin_folds(prev, _darken(sec, band), nxt)
    assert found[_band(2)].mean() >= 0.98  # its middle whole
    assert found[band].mean() >= 0.8  # most of its soft edges too (the margin is grow_folds')
    near = cv2.dilate(band.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert found[~near].sum() == 0  # nothing away from it


def test_line_continuing_into_the_neighbours_is_not_found():
    prev, sec, nxt = _tissue(1)
    band = _band(6)
    moved = _band(6, shift=2)  # a membrane, a little moved from section to section
    assert not thin_folds(_darken(prev, moved), _darken(sec, band), _darken(nxt, moved)).any()
    # in one neighbour only (the other section lost it): still tissue, not a fold
    assert not thin_folds(_darken(prev, moved), _darken(sec, band), nxt).any()


def test_short_mark_and_missing_neighbours_are_not_found():
    prev, sec, nxt = _tissue(0)
    short = _band(6, start=(100, 100), end=(160, 110))  # 61 px: a dark mark, not a fold
    assert not thin_folds(prev, _darken(sec, short), nxt).any()
    band = _band(6)
    assert thin_folds(prev, _darken(sec, band), nxt)[band].mean() >= 0.8
    # with one neighbour or none, nothing: a blurred neighbour alone (the end of a stack)
    # shows the section's sharp membranes as new darkness
    assert not thin_folds(None, _darken(sec, band), nxt).any()
    assert not thin_folds(None, _darken(sec, band), None).any()


def test_curved_myelin_arc_is_not_a_fold():
    """A dark arc (a displaced myelin sheath) bends: it is not taken for a fold."""
    prev, sec, nxt = _tissue(3)
    arc = np.zeros((SIZE, SIZE), np.uint8)
    cv2.ellipse(arc, (128, 128), (90, 90), 0, 0, 200, 1, thickness=6)
    assert not thin_folds(prev, _darken(sec, arc.astype(bool)), nxt).any()


def test_dark_ridges_peak_on_the_band_at_a_matching_scale():
    f = np.full((128, 128), 0.6, np.float32)
    f[:, 60:68] = 0.2  # an 8 px dark band
    r = dark_ridges(f)
    assert r[:, 63:65].min() > 0.05
    assert r[:, :40].max() < 1e-3 and r[:, 90:].max() < 1e-3  # flat: no ridge


def test_detect_damage_adds_thin_folds_and_can_be_told_not_to():
    prev, sec, nxt = _tissue(4)
    band = _band(5)
    stack = np.stack([prev, _darken(sec, band, 0.4), nxt])
    stack = np.clip(stack * 255, 0, 255).astype(np.uint8)
    on = detect_damage(stack, 1, relative=False)
    off = detect_damage(stack, 1, relative=False, thin_folds=False)
    assert on[band].mean() >= 0.9
    assert on[band].mean() > off[band].mean()
    assert not (on & ~cv2.dilate(band.astype(np.uint8), np.ones((9, 9))).astype(bool)).any()
