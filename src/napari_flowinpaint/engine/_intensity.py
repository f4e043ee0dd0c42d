"""Intensity normalisation: any supported dtype to float32 in about [0, 1] and back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import cast_to

__all__ = ["IntensityScale", "match_intensity"]


@dataclass(frozen=True)
class IntensityScale:
    """A linear map between an image's own values and the engine's float32 [0, 1] range.

    ``lo`` maps to 0 and ``hi`` to 1. For integer dtypes the map spans the values actually
    present (robust percentiles), so 12-bit data in a uint16 container is not squashed into
    the bottom of the range.
    """

    lo: float
    hi: float
    dtype: np.dtype

    @classmethod
    def fit(cls, *images: np.ndarray, masks=None, percentile: float = 0.05) -> IntensityScale:
        """Fit the map to the pixels of ``images`` (those not flagged in ``masks``)."""
        values = []
        for i, img in enumerate(images):
            m = None if masks is None else masks[i]
            v = img if m is None else img[~m]
            if v.size:
                # subsample for speed on big slices
                step = max(1, v.size // 262144)
                values.append(v.ravel()[::step])
        dtype = images[0].dtype
        if not values:
            lo, hi = 0.0, 1.0
        else:
            allv = np.concatenate(values).astype(np.float64)
            lo, hi = np.percentile(allv, [percentile, 100 - percentile])
            if hi - lo < 1e-12:
                lo, hi = float(allv.min()), float(allv.max())
            if hi - lo < 1e-12:
                hi = lo + 1.0
        return cls(float(lo), float(hi), np.dtype(dtype))

    def to_unit(self, image: np.ndarray) -> np.ndarray:
        """Image values to float32 in about [0, 1] (a new array)."""
        return ((image.astype(np.float32) - self.lo) / (self.hi - self.lo)).astype(np.float32)

    def from_unit(self, unit: np.ndarray, clip_to: tuple[float, float] | None = None) -> np.ndarray:
        """float32 [0, 1] back to the image's dtype; integers are rounded and clipped to
        their dtype's range, floats to ``clip_to`` when given."""
        out = unit.astype(np.float64) * (self.hi - self.lo) + self.lo
        return cast_to(out, self.dtype, clip=None if self.dtype.kind in "ui" else clip_to)


def match_intensity(reference: np.ndarray, target: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Match the brightness and contrast of ``reference`` to ``target`` on ``known`` pixels.

    A linear map ``a * reference + b`` is chosen so that the mean and standard deviation of
    the reference over the known pixels equal those of the target there; a section imaged
    darker or with less contrast than its neighbours is thus repaired at its own level.

    Parameters
    ----------
    reference, target : ndarray, shape (H, W), float32
    known : ndarray of bool, shape (H, W)
        Pixels of ``target`` that are trustworthy (True = known). With fewer than 16 known
        pixels the reference is returned unchanged.
    """
    if known.sum() < 16:
        return reference
    r = reference[known].astype(np.float64)
    t = target[known].astype(np.float64)
    r_std, t_std = r.std(), t.std()
    gain = t_std / r_std if r_std > 1e-6 else 1.0
    gain = float(np.clip(gain, 0.2, 5.0))  # guard against degenerate fits
    offset = t.mean() - gain * r.mean()
    return (reference * gain + offset).astype(np.float32)
