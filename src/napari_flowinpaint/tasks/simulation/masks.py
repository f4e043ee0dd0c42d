"""Seeded irregular damage masks, for evaluation and for training.

Real section damage has many shapes: scratches and debris look like free-form brush strokes,
stain precipitates and beam damage like irregular blobs, folds and cracks like long thin bands
crossing the section. :func:`random_mask` draws any of these at a requested damaged fraction
and :func:`apply_damage` fills the damaged pixels with white, as FlowInpaint does to simulate
damage (its Eq. 22).

Mask convention of the package: ``True`` marks a *damaged* pixel.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
from scipy import ndimage as ndi

from ...engine import as_mask

__all__ = ["MASK_KINDS", "random_mask", "apply_damage", "white_level"]

#: Kinds of damage :func:`random_mask` can draw.
MASK_KINDS = ("strokes", "blobs", "bands", "mixed")

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT
_MAX_PIECES = 5000  # safety net: pieces drawn before the coverage is forced by growing


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _ONE)), int(round(y * _ONE))


def _strokes(canvas: np.ndarray, rng: np.random.Generator, target: int) -> Iterator[None]:
    """Free-form brush strokes: polylines of random turning angle and constant width, each
    segment drawn with round joints, bouncing off the crop borders. Yields after each
    segment so that drawing stops as soon as the coverage is reached."""
    h, w = canvas.shape
    s = min(h, w)
    cap = max(1.0, np.sqrt(target) / 2.0)  # a small target gets thin strokes
    while True:
        width = float(np.clip(s * rng.uniform(0.015, 0.07), 1.0, cap))
        thick = max(1, int(round(width)))
        x, y = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(3, 11))):
            angle += rng.normal(0.0, 0.9)
            length = s * rng.uniform(0.04, 0.16) + 2.0
            nx, ny = x + length * np.cos(angle), y + length * np.sin(angle)
            if not 0 <= nx <= w - 1:  # bounce off the left/right border
                nx = -nx if nx < 0 else 2 * (w - 1) - nx
                angle = np.pi - angle
            if not 0 <= ny <= h - 1:
                ny = -ny if ny < 0 else 2 * (h - 1) - ny
                angle = -angle
            nx, ny = float(np.clip(nx, 0, w - 1)), float(np.clip(ny, 0, h - 1))
            cv2.line(canvas, _pt(x, y), _pt(nx, ny), 1, thickness=thick, lineType=cv2.LINE_8,
                     shift=_SHIFT)
            cv2.circle(canvas, _pt(nx, ny), int(round(width / 2 * _ONE)), 1, thickness=-1,
                       lineType=cv2.LINE_8, shift=_SHIFT)
            x, y = nx, ny
            yield


def _blobs(canvas: np.ndarray, rng: np.random.Generator, target: int) -> Iterator[None]:
    """Irregular blobs: star-shaped polygons whose radius varies smoothly with the angle
    (a few random harmonics), each covering 15-60 % of the target area."""
    h, w = canvas.shape
    theta = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    while True:
        area = target * rng.uniform(0.15, 0.6)
        r0 = max(1.5, np.sqrt(area / np.pi))
        cx, cy = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
        radius = np.ones_like(theta)
        for k in range(2, 7):
            radius += rng.uniform(0.0, 0.35) / k * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        radius = r0 * np.clip(radius, 0.3, None) * (1 + rng.uniform(-0.05, 0.05, theta.size))
        # a random elongation
        stretch = rng.uniform(1.0, 1.8)
        rot = rng.uniform(0, np.pi)
        px, py = radius * np.cos(theta) * stretch, radius * np.sin(theta) / stretch
        xs = cx + px * np.cos(rot) - py * np.sin(rot)
        ys = cy + px * np.sin(rot) + py * np.cos(rot)
        poly = np.round(np.stack([xs, ys], axis=1) * _ONE).astype(np.int32)
        cv2.fillPoly(canvas, [poly], 1, lineType=cv2.LINE_8, shift=_SHIFT)
        yield


def _bands(canvas: np.ndarray, rng: np.random.Generator, target: int) -> Iterator[None]:
    """Fold/crack-like bands: long bands crossing the whole crop at a random angle, slightly
    wavy, whose width varies gently along their length (thin to medium)."""
    h, w = canvas.shape
    s = min(h, w)
    diag = float(np.hypot(h, w))
    n_nominal = int(rng.integers(1, 4))
    t = np.linspace(-diag / 2 - 2, diag / 2 + 2, max(16, int(diag / 4)))
    while True:
        width = max(1.0, target / (n_nominal * s) * rng.uniform(0.6, 1.4))
        angle = rng.uniform(0, np.pi)
        d = np.array([np.cos(angle), np.sin(angle)])
        n = np.array([-d[1], d[0]])
        c = np.array([rng.uniform(0, w - 1), rng.uniform(0, h - 1)])
        amp = s * rng.uniform(0.0, 0.04)
        period = s * rng.uniform(0.4, 1.5)
        offset = amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        half = width / 2 * (1 + rng.uniform(0.0, 0.4)
                            * np.sin(2 * np.pi * t / (s * rng.uniform(0.3, 1.0))
                                     + rng.uniform(0, 2 * np.pi)))
        centre = c + t[:, None] * d + offset[:, None] * n
        left = centre + half[:, None] * n
        right = centre - half[:, None] * n
        poly = np.round(np.concatenate([left, right[::-1]]) * _ONE).astype(np.int32)
        cv2.fillPoly(canvas, [poly], 1, lineType=cv2.LINE_8, shift=_SHIFT)
        yield


_PAINTERS = {"strokes": _strokes, "blobs": _blobs, "bands": _bands}


def _mixed(canvas: np.ndarray, rng: np.random.Generator, target: int) -> Iterator[None]:
    """Half of the time one kind alone, otherwise pieces of all kinds interleaved."""
    names = list(_PAINTERS)
    if rng.random() < 0.5:
        yield from _PAINTERS[names[int(rng.integers(len(names)))]](canvas, rng, target)
        return
    painters = [_PAINTERS[n](canvas, rng, target) for n in names]
    weights = np.array([0.5, 0.3, 0.2])
    while True:
        next(painters[int(rng.choice(len(painters), p=weights))])
        yield


def _set_count(mask: np.ndarray, n_target: int, rng: np.random.Generator) -> np.ndarray:
    """Thin or grow ``mask`` at its border to exactly ``n_target`` damaged pixels.

    Pixels are removed in order of increasing distance to the background (or added in order
    of increasing distance to the mask), with a little random jitter so that ties along a
    border are broken irregularly rather than in scan order.
    """
    n = int(np.count_nonzero(mask))
    if n == n_target:
        return mask
    if n == 0:
        mask = mask.copy()
        mask.flat[int(rng.integers(mask.size))] = True
        n = 1
    jitter = rng.uniform(0.0, 0.7, mask.shape)
    out = mask.copy()
    if n > n_target:
        idx = np.flatnonzero(mask)
        dist = ndi.distance_transform_edt(mask).ravel()[idx] + jitter.ravel()[idx]
        drop = idx[np.argpartition(dist, n - n_target - 1)[: n - n_target]]
        out.flat[drop] = False
    elif n < n_target:
        idx = np.flatnonzero(~mask)
        dist = ndi.distance_transform_edt(~mask).ravel()[idx] + jitter.ravel()[idx]
        add = idx[np.argpartition(dist, n_target - n - 1)[: n_target - n]]
        out.flat[add] = True
    return out


def random_mask(shape, ratio: float, rng=None, *, kind: str = "mixed",
                tolerance: float = 0.02) -> np.ndarray:
    """An irregular damage mask covering a given fraction of the image.

    Pieces of damage of the chosen kind are drawn one after the other until the damaged
    fraction reaches ``ratio``; when the last piece overshoots (or the fraction cannot be
    reached) the mask is thinned (grown) at its borders to hit ``ratio`` exactly.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the mask, each at least 8 pixels.
    ratio : float
        Wanted damaged fraction, in (0, 1). Reached within ``tolerance`` (and up to the
        rounding to whole pixels).
    rng : numpy.random.Generator or int or None
        Source of randomness (an int is used as a seed). The mask depends only on the
        generator's state, so a seeded generator always gives the same mask.
    kind : {"strokes", "blobs", "bands", "mixed"}, keyword-only
        ``"strokes"``: free-form brush strokes of random width, like the irregular masks of
        image-inpainting benchmarks [1]_. ``"blobs"``: irregular blobs. ``"bands"``:
        fold/crack-like bands crossing the crop at a random angle, slightly wavy, thin to
        medium. ``"mixed"``: one random kind, or pieces of all kinds together.
    tolerance : float, keyword-only
        Largest allowed difference between the damaged fraction and ``ratio``.

    Returns
    -------
    mask : ndarray of bool, shape ``shape``
        True marks damaged pixels.

    Raises
    ------
    ValueError
        For a shape that is not two sizes >= 8, a ratio outside (0, 1), a negative
        tolerance or an unknown kind.

    References
    ----------
    .. [1] Yu, J., Lin, Z., Yang, J., Shen, X., Lu, X., Huang, T. (2019). Free-form image
       inpainting with gated convolution. ICCV.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> mask = random_mask((256, 256), 0.3, rng, kind="strokes")
    >>> abs(mask.mean() - 0.3) <= 0.02
    True
    """
    try:
        shape = tuple(int(v) for v in shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple (H, W) of two ints, got {shape!r}.") from None
    if len(shape) != 2 or min(shape) < 8:
        raise ValueError(f"shape must be (H, W) with both sizes >= 8 pixels, got {shape}.")
    ratio = float(ratio)
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be a damaged fraction in (0, 1), got {ratio}.")
    tolerance = float(tolerance)
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}.")
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {MASK_KINDS}.")
    rng = np.random.default_rng(rng)
    total = shape[0] * shape[1]
    n_target = max(1, int(round(ratio * total)))
    slack = tolerance * total / 2  # stop drawing this close to the target
    canvas = np.zeros(shape, np.uint8)
    painter = (_mixed if kind == "mixed" else _PAINTERS[kind])(canvas, rng, n_target)
    count = 0
    for _ in range(_MAX_PIECES):
        next(painter)
        count = int(np.count_nonzero(canvas))
        if count >= n_target - slack:
            break
    mask = canvas.astype(bool)
    if abs(count - n_target) > slack:
        mask = _set_count(mask, n_target, rng)
    return mask


def white_level(image: np.ndarray):
    """The brightest value of ``image``'s grey scale: the dtype's maximum for integers,
    True for booleans, 1.0 for float images in [0, 1], else the image's own maximum."""
    if image.dtype.kind in "ui":
        return np.iinfo(image.dtype).max
    if image.dtype.kind == "b":
        return True
    if image.size and 0.0 <= float(image.min()) and float(image.max()) <= 1.0:
        return 1.0
    return image.max() if image.size else 1.0


def apply_damage(image, mask) -> np.ndarray:
    """Simulate damage: a copy of ``image`` with the pixels marked in ``mask`` set to white.

    This is FlowInpaint's Eq. 22, ``I = I_gt * (1 - m) + m`` with images in [0, 1]: the
    damaged pixels take the brightest value, i.e. the dtype's maximum for integer images,
    1.0 for float images in [0, 1] and the image's own maximum for other float images.

    Parameters
    ----------
    image : array_like
        Any real-valued array (a section or a stack). Not modified.
    mask : array_like of bool, same shape as ``image``
        True (or a nonzero label) marks damaged pixels.

    Returns
    -------
    ndarray, same shape and dtype as ``image``.
    """
    image = np.asarray(image)
    if image.dtype.kind not in "uifb":
        raise TypeError(f"image has dtype {image.dtype}; expected a real-valued array.")
    mask = as_mask(mask, image.shape)
    out = image.copy()
    out[mask] = white_level(image)
    return out
