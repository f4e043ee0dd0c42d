"""Tests of the image-quality metrics (tasks/metrics.py)."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from _synth import texture
from scipy import ndimage as ndi

from napari_flowinpaint.tasks.evaluation.metrics import (
    fsim,
    phase_congruency,
    psnr,
    psnr_hole,
    sharpness_ratio,
    ssim,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _em(seed=0, shape=(128, 128)):
    return np.round(texture(shape, seed=seed, sigma=1.5) * 200 + 20).astype(np.uint8)


def test_psnr_of_known_mse():
    a = np.zeros((16, 16), np.float64)
    b = a + 5.0  # MSE 25
    assert psnr(a, b, data_range=255) == pytest.approx(10 * np.log10(255**2 / 25))
    assert psnr(a, a, data_range=255) == np.inf


def test_psnr_hole_uses_damaged_pixels_only():
    truth = np.zeros((16, 16), np.uint8)
    result = truth.copy()
    mask = np.zeros((16, 16), bool)
    mask[:4] = True  # 64 of 256 pixels
    result[mask] = 10
    result[~mask] = 0
    assert psnr_hole(truth, result, mask, data_range=255) == pytest.approx(
        10 * np.log10(255**2 / 100))
    assert psnr(truth, result, data_range=255) == pytest.approx(
        10 * np.log10(255**2 / 25))
    with pytest.raises(ValueError, match="no damaged pixel"):
        psnr_hole(truth, result, np.zeros((16, 16), bool), data_range=255)


def test_ssim_values():
    x = _em()
    assert ssim(x, x, data_range=255) == pytest.approx(1.0)
    noisy = np.clip(x + np.random.default_rng(0).normal(0, 20, x.shape), 0, 255)
    s = ssim(x, noisy, data_range=255)
    assert 0.0 < s < 0.9


def test_fsim_identity_and_monotonic():
    x = _em(1)
    assert fsim(x, x) == pytest.approx(1.0)
    blurs = [fsim(x, ndi.gaussian_filter(x.astype(float), s), data_range=255)
             for s in (0.5, 1.0, 2.0, 4.0)]
    assert all(a > b for a, b in zip(blurs, blurs[1:], strict=False)), blurs
    rng = np.random.default_rng(0)
    noises = [fsim(x, np.clip(x + rng.normal(0, s, x.shape), 0, 255), data_range=255)
              for s in (2, 8, 20, 50)]
    assert all(a > b for a, b in zip(noises, noises[1:], strict=False)), noises
    assert 0 < noises[-1] < 0.95


def test_fsim_scale_invariant_through_data_range():
    x = _em(2)
    y = ndi.gaussian_filter(x.astype(float), 1.0)
    a = fsim(x, y, data_range=255)
    b = fsim(x.astype(np.float32) / 255, (y / 255).astype(np.float32))  # floats in [0, 1]
    c = fsim(x.astype(np.float64) * 4, y * 4, data_range=1020)
    assert a == pytest.approx(b, abs=1e-4) and a == pytest.approx(c, abs=1e-6)


def test_fsim_fixed_value():
    """A regression value (agrees with piq's fsim to < 1e-4 when installed)."""
    x = _em(3)
    y = ndi.gaussian_filter(x.astype(float), 1.5)
    assert fsim(x, y, data_range=255) == pytest.approx(0.8496, abs=1e-3)


def test_phase_congruency_range():
    pc = phase_congruency(_em(4).astype(float))
    assert pc.shape == (128, 128)
    assert pc.min() >= 0 and pc.max() <= 1.0 + 1e-9
    assert phase_congruency(np.full((32, 32), 7.0)).max() == 0


def test_sharpness_ratio():
    x = _em(5)
    mask = np.zeros(x.shape, bool)
    mask[30:90, 40:100] = True
    assert sharpness_ratio(x, x, mask) == pytest.approx(1.0)
    blurred = x.copy()
    blurred[mask] = ndi.gaussian_filter(x.astype(float), 2.0)[mask]
    assert sharpness_ratio(x, blurred, mask) < 0.5
    flat = x.copy()
    flat[mask] = 128
    assert sharpness_ratio(x, flat, mask) < sharpness_ratio(x, blurred, mask)


@pytest.mark.parametrize("func", ["psnr", "ssim", "fsim"])
def test_input_checks(func):
    f = {"psnr": psnr, "ssim": ssim, "fsim": fsim}[func]
    a = np.zeros((32, 32), np.uint8)
    with pytest.raises(ValueError, match="same shape"):
        f(a, np.zeros((32, 31), np.uint8), data_range=255)
    with pytest.raises(ValueError, match="2-D"):
        f(np.zeros((2, 32, 32), np.uint8), np.zeros((2, 32, 32), np.uint8), data_range=255)
    with pytest.raises(TypeError, match="dtype"):
        f(a.astype(np.int32), a.astype(np.int32), data_range=255)
    with pytest.raises(ValueError, match="data_range"):
        f(a, a, data_range=0)


def test_fsim_float_outside_unit_needs_range():
    a = np.linspace(0, 3, 32 * 32).reshape(32, 32)
    with pytest.raises(ValueError, match="data_range"):
        fsim(a, a)


def _load_piq_fsim():
    """piq's fsim, imported without piq/__init__ (which needs torchvision)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("piq")
    except (ImportError, ValueError):
        spec = None
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    roots.append(Path("/tmp/ref_impl/piq"))
    for root in roots:
        if (root / "fsim.py").exists():
            saved = {k: v for k, v in sys.modules.items() if k == "piq" or k.startswith("piq.")}
            pkg = types.ModuleType("piq")
            pkg.__path__ = [str(root)]
            sys.modules["piq"] = pkg
            try:
                return importlib.import_module("piq.fsim").fsim
            except Exception:  # noqa: BLE001 - any import problem means "not available"
                return None
            finally:
                for k in [k for k in sys.modules if k == "piq" or k.startswith("piq.")]:
                    del sys.modules[k]
                sys.modules.update(saved)
    return None


def test_fsim_matches_piq_on_real_em():
    piq_fsim = _load_piq_fsim()
    if piq_fsim is None:
        pytest.skip("piq is not importable (install it with pip install --no-deps --target "
                    "/tmp/ref_impl piq to run this cross-check)")
    path = DATA / "isbi2012_test" / "raw.tif"
    if not path.exists():
        pytest.skip(f"real EM data not found at {path}")
    import cv2
    import tifffile
    import torch

    from napari_flowinpaint.tasks.simulation import random_mask

    stack = tifffile.imread(path)
    truth = stack[5, 100:356, 50:306].astype(np.float64)
    mask = random_mask(truth.shape, 0.3, 0)
    damaged = np.where(mask, 255, truth).astype(np.uint8)
    tests = {
        "blur": ndi.gaussian_filter(truth, 1.0),
        "noise": np.clip(truth + np.random.default_rng(0).normal(0, 15, truth.shape), 0, 255),
        "telea": cv2.inpaint(damaged, mask.astype(np.uint8), 5, cv2.INPAINT_TELEA)
        .astype(np.float64),
        "whole": stack[12].astype(np.float64),  # 512^2: exercises the 2x downsampling
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: threads only add contention on a busy machine
    try:
        for name, dist in tests.items():
            ref = truth if name != "whole" else stack[11].astype(np.float64)
            with torch.no_grad():
                theirs = float(piq_fsim(torch.from_numpy(ref)[None, None].float(),
                                        torch.from_numpy(dist)[None, None].float(),
                                        data_range=255, chromatic=False))
            ours = fsim(ref, dist, data_range=255)
            assert ours == pytest.approx(theirs, abs=0.01), name
    finally:
        torch.set_num_threads(threads)
