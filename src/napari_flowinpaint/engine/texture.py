"""Tissue grain in a repair: the generator's structure with the fine detail of real tissue.

The guided-inpainting generator trained for low error gives close to the conditional mean: the
right structures, but smooth, like the truth blurred by a Gaussian of about 2 px. The refined
reference (paper section 3.2) is real tissue, warped from the neighbours onto the section: sharp,
but its fine detail is that of the neighbours. :func:`carry_grain` keeps the generator's
structure (its Gaussian low-pass) and adds the reference's fine detail (the reference minus
its low-pass), scaled so that the grain in the hole matches the grain of the section's own
known pixels. This is the *textured* repair; the *faithful* one is the generator's output
alone (least error).

Carried grain that is not the section's own costs fidelity (it adds its variance to the error).
So the grain is carried at full strength only where the section's known pixels confirm that the
reference's fine detail is theirs: the correlation of the two details near the hole, ``rho``,
sets the strength, from :data:`LEAST_STRENGTH` (``rho <= RHO_NONE``: serial sections far apart,
such as 50 nm ssTEM at 4 nm pixels, rho ~ 0.07) to 1 (``rho >= RHO_FULL``: FIB-SEM, block-face
and most serial-section SEM, rho 0.17-0.5).
"""

from __future__ import annotations

import cv2
import numpy as np

from .names import REPAIR_MODES

__all__ = ["REPAIR_MODES", "carry_grain", "check_mode", "detail_correlation", "grain_std",
           "grain_strength"]

#: Side of the Gaussian (sigma, px) that splits structure from grain.
GRAIN_SIGMA = 2.0
#: Correlation of the reference's detail with the section's own below which the grain is
#: carried at :data:`LEAST_STRENGTH`, and above which at full strength (linear between).
RHO_NONE, RHO_FULL = 0.08, 0.15
#: Strength of the carried grain when the section does not confirm it.
LEAST_STRENGTH = 0.5
#: Known pixels farther than this from the hole do not judge the correlation.
_NEAR = 48


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`REPAIR_MODES`, else a ValueError that lists them."""
    if mode not in REPAIR_MODES:
        raise ValueError(f"unknown repair mode {mode!r}; expected one of {REPAIR_MODES}: "
                         "'textured' looks like tissue (the default), 'faithful' has the "
                         "least error.")
    return mode


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(np.ascontiguousarray(a, dtype=np.float32), (0, 0), sigma,
                            borderType=cv2.BORDER_REFLECT)


def grain_std(image, known=None, *, sigma: float = GRAIN_SIGMA) -> float | None:
    """Standard deviation of ``image`` minus its Gaussian low-pass, over usable pixels.

    With ``known`` (bool, True on pixels to trust), the low-pass is taken over the known
    pixels only (normalised convolution) and only known pixels farther than ``2 sigma + 2``
    from an unknown one count, so a hole's fill value leaks into nothing. None when fewer
    than 64 pixels are usable.
    """
    img = np.asarray(image, dtype=np.float32)
    if known is None:
        return float(np.std(img - _blur(img, sigma))) if img.size >= 64 else None
    k = np.asarray(known, dtype=bool)
    return _std_over(_detail(img, k, sigma), _distance(~k) > 2 * sigma + 2)


def _detail(image, known, sigma: float) -> np.ndarray:
    """``image`` minus its Gaussian low-pass over the ``known`` pixels only."""
    k = np.asarray(known, dtype=np.float32)
    img = np.asarray(image, dtype=np.float32)
    return img - _blur(img * k, sigma) / np.maximum(_blur(k, sigma), 1e-3)


def _distance(mask) -> np.ndarray:
    """Distance of each pixel to the nearest pixel of ``mask`` (0 on it)."""
    return cv2.distanceTransform((~np.asarray(mask, dtype=bool)).astype(np.uint8),
                                 cv2.DIST_L2, 3)


def _std_over(values: np.ndarray, where: np.ndarray) -> float | None:
    return float(np.std(values[where])) if int(where.sum()) >= 64 else None


def _correlation(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float | None:
    """Pearson correlation of ``a`` and ``b`` over ``where`` (None under 64 pixels)."""
    if int(where.sum()) < 64:
        return None
    a, b = a[where], b[where]
    sa, sb = float(a.std()), float(b.std())
    if sa <= 1e-8 or sb <= 1e-8:
        return 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def _band(dist: np.ndarray, sigma: float) -> np.ndarray:
    """Known pixels near the hole: farther than ``2 sigma + 2``, nearer than 48 px."""
    return (dist > 2 * sigma + 2) & (dist < _NEAR)


def detail_correlation(reference, damaged, mask, *, sigma: float = GRAIN_SIGMA) -> float | None:
    """Correlation of the fine detail of ``reference`` with the section's own, over the known
    pixels near the hole (farther than ``2 sigma + 2`` from it, nearer than 48 px); None when
    fewer than 64 such pixels exist."""
    mask = np.asarray(mask, dtype=bool)
    ref = np.asarray(reference, dtype=np.float32)
    return _correlation(_detail(damaged, ~mask, sigma), ref - _blur(ref, sigma),
                        _band(_distance(mask), sigma))


def grain_strength(rho: float | None) -> float:
    """Strength of the carried grain for the correlation ``rho`` (None: a whole section
    missing, nothing to judge by: full strength)."""
    if rho is None:
        return 1.0
    t = min(max((rho - RHO_NONE) / (RHO_FULL - RHO_NONE), 0.0), 1.0)
    return LEAST_STRENGTH + (1.0 - LEAST_STRENGTH) * t


def carry_grain(fill, reference, damaged, mask, *, neighbours=(),
                sigma: float = GRAIN_SIGMA) -> np.ndarray:
    """The structure of ``fill`` with the grain of ``reference``, matched to the section.

    Parameters
    ----------
    fill : ndarray, shape (H, W), float32
        The generator's repair (unit range, not composited).
    reference : ndarray, shape (H, W), float32
        Real tissue aligned to the section: the refined reference.
    damaged : ndarray, shape (H, W), float32
        The section; its pixels under ``mask`` are ignored.
    mask : ndarray of bool, shape (H, W)
        True on damaged pixels.
    neighbours : sequence of ndarray, keyword-only
        The neighbouring sections (matched to the section): their grain is the target when
        the section has too few known pixels to tell its own (a whole missing section).
    sigma : float, keyword-only
        Gaussian that splits structure (below) from grain (above), in pixels.

    Returns
    -------
    ndarray, shape (H, W), float32
        ``lowpass(fill) + s * g * (reference - lowpass(reference))``, where ``g`` makes the
        grain's standard deviation in the hole that of the section's known pixels (at most
        3) and ``s`` is :func:`grain_strength` of :func:`detail_correlation`. Outside the
        hole it equals the same formula; callers composite.
    """
    fill = np.asarray(fill, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if not (fill.shape == reference.shape == mask.shape == np.shape(damaged)):
        raise ValueError(f"fill {fill.shape}, reference {reference.shape}, damaged "
                         f"{np.shape(damaged)} and mask {mask.shape} must have one shape.")
    if not mask.any():
        return fill.copy()
    detail = reference - _blur(reference, sigma)
    own = _detail(damaged, ~mask, sigma)  # the section's detail and where it can be judged,
    dist = _distance(mask)  # computed once for its grain and for the correlation
    target = _std_over(own, dist > 2 * sigma + 2)
    if target is None:
        seen = [g for g in (grain_std(n, sigma=sigma) for n in neighbours) if g is not None]
        target = float(np.mean(seen)) if seen else None
    have = float(np.std(detail[mask]))
    gain = 1.0 if target is None or have <= 1e-6 else min(target / have, 3.0)
    gain *= grain_strength(_correlation(own, detail, _band(dist, sigma)))
    return (_blur(fill, sigma) + np.float32(gain) * detail).astype(np.float32)
