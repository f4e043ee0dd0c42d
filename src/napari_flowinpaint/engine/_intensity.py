"""Intensity normalisation: any supported dtype to float32 in about [0, 1] and back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import cast_to

__all__ = ["IntensityScale", "intensity_matcher", "match_intensity"]


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
            allv = allv[np.isfinite(allv)]
            lo, hi = np.percentile(allv, [percentile, 100 - percentile]) if allv.size else (0, 0)
            if _flat(lo, hi) and allv.size:
                lo, hi = float(allv.min()), float(allv.max())
            if _flat(lo, hi):
                hi = lo + max(1.0, abs(lo))  # a constant image: any span will do
        return cls(float(lo), float(hi), np.dtype(dtype))

    def to_unit(self, image: np.ndarray) -> np.ndarray:
        """Image values to float32 in about [0, 1] (a new array).

        Computed in float64 for float64 data and data near the limits of float32 (values
        of +-3e38 would overflow on the way), in float32 otherwise (faster).
        """
        wide = image.dtype == np.float64 or max(abs(self.lo), abs(self.hi)) > 1e30
        work = np.float64 if wide else np.float32
        return ((image.astype(work) - work(self.lo)) / work(self.hi - self.lo)).astype(np.float32)

    def from_unit(self, unit: np.ndarray, clip_to: tuple[float, float] | None = None) -> np.ndarray:
        """float32 [0, 1] back to the image's dtype; integers are rounded and clipped to
        their dtype's range, floats to ``clip_to`` when given."""
        out = unit.astype(np.float64) * (self.hi - self.lo) + self.lo
        return cast_to(out, self.dtype, clip=None if self.dtype.kind in "ui" else clip_to)


def _flat(lo: float, hi: float) -> bool:
    """True when ``[lo, hi]`` spans no usable range: empty, or below float64's resolution at
    that magnitude (a range of 1e-20 is fine for data of that size)."""
    return not hi - lo > 64 * np.finfo(np.float64).eps * max(abs(lo), abs(hi), 1e-300)


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
    return intensity_matcher(target, known)(reference)


def intensity_matcher(target: np.ndarray, known: np.ndarray):
    """:func:`match_intensity` onto one ``target`` for several references: a function of the
    reference, the target's statistics computed once (the same result to the bit)."""
    if known.sum() < 16:
        return lambda reference: reference
    t = target[known].astype(np.float64)
    t_std, t_mean = t.std(), t.mean()
    del t

    def match(reference: np.ndarray) -> np.ndarray:
        r = reference[known].astype(np.float64)
        r_std = r.std()
        gain = t_std / r_std if r_std > 1e-6 else 1.0
        gain = float(np.clip(gain, 0.2, 5.0))  # guard against degenerate fits
        offset = t_mean - gain * r.mean()
        return (reference * gain + offset).astype(np.float32)

    return match
