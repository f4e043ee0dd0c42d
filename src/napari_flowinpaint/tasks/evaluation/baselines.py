"""Repair methods the evaluation compares: classical baselines and the engine's stages.

Methods are looked up in :data:`METHODS`, a dict ``name -> callable(prev, damaged, next,
mask) -> repaired`` that other modules may extend (:func:`register_method`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import cv2
import numpy as np

from ...engine import FlowInpainter, cast_to

__all__ = ["METHODS", "DEFAULT_METHODS", "register_method", "method_average", "method_telea",
           "method_biharmonic", "method_flow", "method_refined", "method_flowinpaint"]

#: The methods :func:`~napari_flowinpaint.tasks.evaluation.evaluate` scores by default.
DEFAULT_METHODS = ("average", "telea", "biharmonic", "flow")


def method_average(prev, damaged, next, mask) -> np.ndarray:
    """The mean of the two neighbours (no motion compensation)."""
    mean = (prev.astype(np.float64) + next.astype(np.float64)) / 2
    return cast_to(mean, damaged.dtype)


def method_telea(prev, damaged, next, mask) -> np.ndarray:
    """Single-image inpainting by OpenCV's fast marching method (Telea 2004), radius 5."""
    img = damaged if damaged.dtype in (np.uint8, np.uint16, np.float32) else \
        damaged.astype(np.float32)
    out = cv2.inpaint(np.ascontiguousarray(img), mask.astype(np.uint8), 5, cv2.INPAINT_TELEA)
    return cast_to(out, damaged.dtype) if out.dtype != damaged.dtype else out


def method_biharmonic(prev, damaged, next, mask) -> np.ndarray:
    """Single-image inpainting by the biharmonic equation
    (:func:`skimage.restoration.inpaint_biharmonic`)."""
    from skimage.restoration import inpaint_biharmonic

    out = inpaint_biharmonic(damaged.astype(np.float64), mask)
    return cast_to(out, damaged.dtype)


@functools.lru_cache(maxsize=4)
def _engine(stages: str) -> FlowInpainter:
    return FlowInpainter(stages=stages, device="cpu")


def method_flow(prev, damaged, next, mask) -> np.ndarray:
    """The optical-flow initial reference between the neighbours (section 3.1), matched in
    intensity to the damaged section."""
    return _engine("initial_reference").inpaint(prev, damaged, next, mask)


def method_refined(prev, damaged, next, mask) -> np.ndarray:
    """The refined reference (section 3.2) of the bundled weights, composited."""
    return _engine("refined_reference").inpaint(prev, damaged, next, mask)


def method_flowinpaint(prev, damaged, next, mask) -> np.ndarray:
    """All three stages with the bundled weights (:class:`FlowInpainter` defaults)."""
    return _engine("guided_inpainting").inpaint(prev, damaged, next, mask)


#: Repair methods by name: ``callable(prev, damaged, next, mask) -> repaired`` on one crop
#: (same shape and dtype as ``damaged``; only the pixels where ``mask`` is True are used).
METHODS: dict[str, Callable[..., np.ndarray]] = {
    "average": method_average,
    "telea": method_telea,
    "biharmonic": method_biharmonic,
    "flow": method_flow,
    "refined": method_refined,
    "flowinpaint": method_flowinpaint,
}


def register_method(name: str, function: Callable[..., np.ndarray], *,
                    overwrite: bool = False) -> None:
    """Add a repair method to :data:`METHODS` (``function(prev, damaged, next, mask)``)."""
    if not callable(function):
        raise TypeError(f"method {name!r} must be callable, got {type(function).__name__}.")
    if name in METHODS and not overwrite:
        raise ValueError(f"a method called {name!r} is already registered; pass "
                         "overwrite=True to replace it.")
    METHODS[str(name)] = function
