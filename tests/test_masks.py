"""Tests of the seeded damage masks (tasks/masks.py)."""

import numpy as np
import pytest

from napari_flowinpaint.tasks.simulation import MASK_KINDS, apply_damage, random_mask


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("ratio", [0.01, 0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(32, 32), (256, 256), (64, 200)])
def test_ratio_within_tolerance(kind, ratio, shape):
    for seed in range(3):
        mask = random_mask(shape, ratio, np.random.default_rng(seed), kind=kind)
        assert mask.dtype == bool and mask.shape == shape
        assert abs(mask.mean() - ratio) <= 0.02


def test_tighter_tolerance_is_honoured():
    mask = random_mask((128, 128), 0.25, 3, kind="strokes", tolerance=0.001)
    assert abs(mask.mean() - 0.25) <= 0.001


def test_large_crop():
    mask = random_mask((1024, 1024), 0.3, 0, kind="mixed")
    assert abs(mask.mean() - 0.3) <= 0.02


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_deterministic_and_seed_dependent(kind):
    a = random_mask((96, 96), 0.3, np.random.default_rng(7), kind=kind)
    b = random_mask((96, 96), 0.3, np.random.default_rng(7), kind=kind)
    c = random_mask((96, 96), 0.3, np.random.default_rng(8), kind=kind)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.05
    # an int seed is the same as a generator seeded with it
    np.testing.assert_array_equal(random_mask((96, 96), 0.3, 7, kind=kind), a)


def test_kinds_differ_in_shape():
    """Strokes are thin (much border per area), blobs compact."""
    def border_fraction(m):
        inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
        return 1 - inner.sum() / m[1:-1, 1:-1].sum()

    strokes = np.mean([border_fraction(random_mask((256, 256), 0.2, s, kind="strokes"))
                       for s in range(4)])
    blobs = np.mean([border_fraction(random_mask((256, 256), 0.2, s, kind="blobs"))
                     for s in range(4)])
    assert strokes > 1.5 * blobs


def test_fast_at_256():
    import time

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for i in range(20):
        random_mask((256, 256), (0.1, 0.3, 0.5, 0.9)[i % 4], rng)
    assert (time.perf_counter() - t0) / 20 < 0.05


@pytest.mark.parametrize("bad, match", [
    (dict(shape=(4, 64)), "at least|>= 8"),
    (dict(shape=(8, 8, 8)), "H, W"),
    (dict(ratio=0.0), r"\(0, 1\)"),
    (dict(ratio=1.2), r"\(0, 1\)"),
    (dict(kind="circles"), "unknown mask kind"),
    (dict(tolerance=-0.1), "tolerance"),
])
def test_bad_arguments(bad, match):
    args = dict(shape=(64, 64), ratio=0.2, kind="mixed", tolerance=0.02) | bad
    with pytest.raises(ValueError, match=match):
        random_mask(args["shape"], args["ratio"], 0, kind=args["kind"],
                    tolerance=args["tolerance"])


def test_apply_damage_white_per_dtype():
    mask = np.zeros((8, 8), bool)
    mask[2:4, 3:6] = True
    u8 = np.full((8, 8), 10, np.uint8)
    u16 = np.full((8, 8), 10, np.uint16)
    f01 = np.full((8, 8), 0.2, np.float32)
    f = np.linspace(-5, 40, 64).reshape(8, 8)
    for img, white in ((u8, 255), (u16, 65535), (f01, 1.0), (f, 40.0)):
        before = img.copy()
        out = apply_damage(img, mask)
        assert out.dtype == img.dtype
        assert np.all(out[mask] == white)
        np.testing.assert_array_equal(out[~mask], img[~mask])
        np.testing.assert_array_equal(img, before)  # input untouched


def test_apply_damage_checks_shape():
    with pytest.raises(ValueError, match="shape"):
        apply_damage(np.zeros((8, 8), np.uint8), np.zeros((8, 9), bool))
