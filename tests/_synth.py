"""Synthetic EM-like data for tests that must not depend on ../shared."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def texture(shape=(128, 128), *, seed=0, sigma=2.0) -> np.ndarray:
    """Smooth random texture in [0, 1], float32 (membrane-like blobs)."""
    rng = np.random.default_rng(seed)
    t = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    t = (t - t.min()) / (t.max() - t.min())
    return t.astype(np.float32)


def shifted(img: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    """``img`` moved by (dx, dy) pixels: out(x) = img(x - d), periodic, sub-pixel exact."""
    return ndi.shift(img, (dy, dx), order=3, mode="grid-wrap").astype(np.float32)


def moving_stack(n=5, shape=(64, 64), *, step=1.5, seed=0, dtype=np.uint8) -> np.ndarray:
    """A stack whose slice z is one texture moved by z * step pixels along x."""
    base = texture(shape, seed=seed)
    stack = np.stack([shifted(base, z * step) for z in range(n)])
    if dtype == np.uint8:
        return np.round(stack * 200 + 20).astype(np.uint8)
    if dtype == np.uint16:
        return np.round(stack * 3000 + 500).astype(np.uint16)
    return stack.astype(dtype)


class CountingStack:
    """A lazy stack stand-in (zarr, dask) that records how many sections each read takes and
    refuses to be read whole by ``np.asarray``."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, 3
        self.reads = []

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        first = key[0] if isinstance(key, tuple) else key
        n = len(range(*first.indices(self.shape[0]))) if isinstance(first, slice) else 1
        self.reads.append(n)
        return np.asarray(self.array[key])

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the whole lazy stack was read with np.asarray")
