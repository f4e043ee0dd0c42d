"""Confidence map of a repair: where the repaired pixels can be trusted.

The map is computed from what the method knows when it repairs, with no ground truth:

* ``disagreement``: how much the two neighbours, warped to the damaged section (Eq. 1 and 2),
  disagree, near the pixel (Gaussian, sigma 1 px) and around it (sigma 8 px). Structures
  that appear or end between the sections, or motion the optical flow missed, show here.
* ``known_residual``: how far the initial reference (Eq. 3) is from the section where the
  section is known, spread into the hole by normalised convolution (sigma 32 px), and its
  mean over the whole region. A section that is hard to interpolate is hard everywhere.
* ``depth``: distance into the hole, in pixels (the middle of a wide hole is furthest from
  any known pixel).
* ``structure``: gradient magnitude of the repair (sigma 3 px): edges and membranes are where
  a small misplacement costs most.

The expected absolute error (unit range: 1 = the data's range) is a log-linear combination of
these cues, ``log(e + c) = w . log(f + c) + b`` with ``c = 0.01``, fitted by least squares on
the *training* parts of the four development stacks (``benchmarks/calibrate_confidence.py``
refits it and prints the calibration on the validation parts). Confidence is
``1 / (1 + (e / 0.06) ** 2)``: 0.5 where about 6 % of the range is expected to be wrong, 1
outside the mask.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["CONFIDENCE_CUES", "HALF_CONFIDENCE_ERROR", "confidence_cues", "confidence_from_cues",
           "repair_confidence"]

#: Names of the cues, in the order of :data:`_WEIGHTS`.
CONFIDENCE_CUES = ("disagreement_1", "disagreement_8", "known_residual_32", "known_residual",
                   "depth", "structure_3")
#: Log-linear weights of the cues and the intercept (``benchmarks/calibrate_confidence.py``).
_WEIGHTS = np.array([0.04, 0.286, 0.329, 0.182, 0.124, 0.197], dtype=np.float32)
_INTERCEPT = -0.456
_OFFSET = 0.01
#: Expected absolute error (unit range) at which the confidence is 0.5.
HALF_CONFIDENCE_ERROR = 0.06


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(np.ascontiguousarray(a, dtype=np.float32), (0, 0), sigma,
                            borderType=cv2.BORDER_REFLECT)


def confidence_cues(result, reference, damaged, mask, warps=None) -> dict[str, np.ndarray]:
    """The per-pixel cues the confidence is made of (see the module's description).

    Parameters
    ----------
    result : ndarray, shape (H, W), float32
        The repair in the engine's unit range (not composited).
    reference : ndarray, shape (H, W), float32
        The initial reference (Eq. 3), unit range, matched to the section.
    damaged : ndarray, shape (H, W), float32
        The section in unit range; its values under ``mask`` are ignored.
    mask : ndarray of bool, shape (H, W)
        True on damaged pixels.
    warps : (ndarray, ndarray) or None
        The two neighbours warped to the section (Eq. 1, 2). None when there was one
        neighbour only: its difference from the section stands in for the disagreement.

    Returns
    -------
    dict
        ``name -> float32 (H, W)`` for every name in :data:`CONFIDENCE_CUES`.
    """
    mask = np.asarray(mask, dtype=bool)
    known = ~mask
    residual = np.abs(reference - damaged) * known
    has_known = bool(known.sum() >= 16)
    if has_known:
        weight = _blur(known.astype(np.float32), 32)
        spread = _blur(residual, 32) / np.maximum(weight, 1e-4)
        overall = float(residual[known].mean())
    if warps is not None:
        disagreement = np.abs(warps[0] - warps[1])
    else:  # one neighbour: how well it matches the known part, everywhere
        disagreement = spread if has_known else np.full(mask.shape, 0.1, np.float32)
    if not has_known:  # a whole section missing: the neighbours' disagreement instead
        overall = float(disagreement.mean())
        spread = _blur(disagreement, 32)
    gy, gx = np.gradient(np.asarray(result, dtype=np.float32))
    depth = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    return {
        "disagreement_1": _blur(disagreement, 1),
        "disagreement_8": _blur(disagreement, 8),
        "known_residual_32": spread.astype(np.float32),
        "known_residual": np.full(mask.shape, overall, np.float32),
        "depth": depth.astype(np.float32),
        "structure_3": _blur(np.hypot(gx, gy), 3),
    }


def confidence_from_cues(cues: dict[str, np.ndarray], mask) -> np.ndarray:
    """Confidence in [0, 1] (float32, 1 outside ``mask``) from :func:`confidence_cues`."""
    log_error = np.full(np.shape(mask), _INTERCEPT, np.float32)
    for name, w in zip(CONFIDENCE_CUES, _WEIGHTS, strict=True):
        log_error += w * np.log(np.maximum(cues[name], 0) + _OFFSET)
    error = np.exp(log_error) - _OFFSET
    conf = 1.0 / (1.0 + (np.maximum(error, 0) / HALF_CONFIDENCE_ERROR) ** 2)
    return np.where(mask, conf, 1.0).astype(np.float32)


def repair_confidence(result, reference, damaged, mask, warps=None) -> np.ndarray:
    """Per-pixel confidence of a repair, float32 in [0, 1] (1 = reliable, 1 outside the mask).

    Parameters are those of :func:`confidence_cues` (unit-range float32 arrays of one
    shape (H, W)).

    Returns
    -------
    ndarray, shape (H, W), float32

    Examples
    --------
    :meth:`FlowInpainter.inpaint(..., return_confidence=True)
    <napari_flowinpaint.engine.FlowInpainter.inpaint>` computes it for every repair.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != np.shape(result):
        raise ValueError(f"mask has shape {mask.shape} but the result has shape "
                         f"{np.shape(result)}; they must match.")
    return confidence_from_cues(confidence_cues(result, reference, damaged, mask, warps), mask)

