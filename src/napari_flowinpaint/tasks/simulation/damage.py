"""Realistic simulated section damage, to train and judge damage detection.

FlowInpaint's Figure 1 names the damage a vEM user meets: uneven staining with cloud-like
sediment, imperfect sectioning that erases regions, and microscope settings that leave round
regions blurred or missing. Serial sectioning adds folds, cracks and tears, dust and stain
precipitates, blank holes in the support film and whole missing sections.
:func:`simulate_damage` renders each of these on a clean section and returns the true mask.

Mask convention of the package: ``True`` marks a *damaged* pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

from ...engine import as_slice, cast_to
from .creases import continuing_line, crease
from .masks import random_mask, white_level

__all__ = ["DAMAGE_KINDS", "simulate_damage", "continuing_structure", "noise_level"]

#: Kinds of damage :func:`simulate_damage` renders.
DAMAGE_KINDS = ("hole", "missing", "crack", "fold", "stain", "sediment", "blur", "defocus",
                "crease")


def noise_level(image) -> float:
    """Standard deviation of the pixel noise of ``image``, in its grey levels.

    Estimated from the median absolute value of the difference between each pixel and the
    mean of its 4 neighbours (for white noise of standard deviation ``s`` that difference has
    standard deviation ``s * sqrt(1.25)``), which the structures of a section barely move.
    """
    f = np.asarray(image, np.float32)
    if min(f.shape) < 3:
        return 0.0
    lap = f[1:-1, 1:-1] - 0.25 * (f[:-2, 1:-1] + f[2:, 1:-1] + f[1:-1, :-2] + f[1:-1, 2:])
    return float(1.4826 * np.median(np.abs(lap)) / np.sqrt(1.25))


def _range(image: np.ndarray) -> tuple[float, float]:
    """Black and white of the image's grey scale."""
    white = float(white_level(image))
    black = 0.0 if image.dtype.kind in "ui" else min(0.0, float(image.min()))
    return black, white


def _band(shape, rng, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A long slightly wavy band crossing the image: its signed distance field (pixels from
    the band's centre line, along its normal), the unit normal and the band mask."""
    h, w = shape
    s = min(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    normal = np.array([-np.sin(angle), np.cos(angle)], np.float32)  # (x, y)
    cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    along = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    across = (xx - cx) * normal[0] + (yy - cy) * normal[1]
    amp = s * rng.uniform(0.0, 0.03)
    period = s * rng.uniform(0.5, 1.5)
    across = across + amp * np.sin(2 * np.pi * along / period + rng.uniform(0, 2 * np.pi))
    local_w = width * (1 + 0.3 * np.sin(2 * np.pi * along / (s * rng.uniform(0.3, 1.0))
                                        + rng.uniform(0, 2 * np.pi)))
    return across, normal, np.abs(across) <= local_w / 2


def _shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, image.shape[::-1], flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _soft_blobs(shape, rng, n: int, r_min: float, r_max: float) -> np.ndarray:
    """Sum-free union of ``n`` soft elliptic blobs in [0, 1] with flat tops and soft edges."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    alpha = np.zeros(shape, np.float32)
    for _ in range(n):
        r = rng.uniform(r_min, r_max)
        cx, cy = rng.uniform(r, w - r) if w > 2 * r else w / 2, \
            rng.uniform(r, h - r) if h > 2 * r else h / 2
        stretch = rng.uniform(1.0, 1.6)
        rot = rng.uniform(0, np.pi)
        u = ((xx - cx) * np.cos(rot) + (yy - cy) * np.sin(rot)) / (r * stretch)
        v = (-(xx - cx) * np.sin(rot) + (yy - cy) * np.cos(rot)) * stretch / r
        rr = np.sqrt(u * u + v * v)
        alpha = np.maximum(alpha, 1.0 / (1.0 + rr ** rng.uniform(6, 10)))
    return alpha


def _cloud(shape, rng, fraction: float) -> np.ndarray:
    """Cloud-like soft region covering about ``fraction`` of the image: thresholded
    multi-scale (1/f) noise, with a soft edge a few pixels wide."""
    h, w = shape
    s = min(h, w)
    field = np.zeros(shape, np.float32)
    for k, scale in enumerate((0.25, 0.12, 0.06, 0.03)):
        noise = rng.standard_normal(shape).astype(np.float32)
        sigma = max(1.0, s * scale)
        g = cv2.GaussianBlur(noise, (0, 0), sigma)
        field += g / (g.std() + 1e-8) * 0.55 ** k
    t = np.quantile(field, 1.0 - fraction)
    ramp = 0.15 * field.std()
    return np.clip((field - t) / ramp + 0.5, 0.0, 1.0)


def simulate_damage(image, kind: str, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Render one kind of section damage on a clean section.

    Parameters
    ----------
    image : array_like, shape (H, W)
        A clean section (uint8, uint16, float32 or float64), at least 32x32. Not modified.
    kind : str
        One of :data:`DAMAGE_KINDS`:

        ``"hole"``
            blank holes in the support film: irregular white blobs (1-12 % of the section)
            holding only the detector's noise.
        ``"missing"``
            a whole missing section: blank (white, black or mid-grey) with noise.
        ``"crack"``
            a crack or tear: a bright blank band 4-24 pixels wide crossing the section, the
            tissue beyond it pushed away by the band's width.
        ``"fold"``
            a fold: a dark band 8-48 pixels wide where two layers of tissue overlap (darker,
            structures doubled), the tissue beyond it pulled in by the band's width.
        ``"stain"``
            dust and stain precipitates: 1-6 dark round blobs, 8-40 pixels in radius.
        ``"sediment"``
            uneven staining: a cloud-like region (5-30 %) darkened or hazed by 30-60 %,
            its texture kept.
        ``"blur"``
            1-3 round regions (radius 6-25 % of the section) blurred by a Gaussian of
            sigma 2.5-6 pixels.
        ``"defocus"``
            the whole section out of focus (a defocused or astigmatic image): blurred by a
            Gaussian of sigma 0.8-3 pixels, its contrast lowered by up to 20 %, the
            detector's noise kept (callosum_sssem's real defocused section 43 has about a
            fifth less fine detail than its neighbours: sigma near 1).
        ``"crease"``
            a thin fold: 2.5-24 pixels wide, curved, sometimes branching, the tissue beside
            it pulled in and stretched or compressed (:func:`~.creases.crease`).
    rng : numpy.random.Generator or int or None
        Source of randomness; a seeded generator always renders the same damage.

    Returns
    -------
    damaged : ndarray, shape (H, W), dtype of ``image``
    mask : ndarray of bool, shape (H, W)
        True marks the damaged pixels: those whose content no longer shows the section
        (for soft-edged damage, where at least half of the effect is reached).

    Raises
    ------
    ValueError
        For an unknown kind or an image smaller than 32x32.

    Examples
    --------
    >>> img = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    >>> damaged, mask = simulate_damage(img, "missing", 0)
    >>> bool(mask.all()), damaged.dtype
    (True, dtype('uint8'))
    """
    img = as_slice(image)
    if kind not in DAMAGE_KINDS:
        raise ValueError(f"unknown damage kind {kind!r}; expected one of {DAMAGE_KINDS}.")
    if min(img.shape) < 32:
        raise ValueError(f"the image must be at least 32x32 pixels, got shape {img.shape}.")
    rng = np.random.default_rng(rng)
    black, white = _range(img)
    span = white - black
    f = img.astype(np.float32)
    h, w = f.shape
    s = min(h, w)
    sigma_n = max(noise_level(img), 0.004 * span)

    def noise() -> np.ndarray:
        return rng.standard_normal(f.shape).astype(np.float32) * sigma_n

    if kind == "hole":
        mask = random_mask(f.shape, rng.uniform(0.01, 0.12), rng, kind="blobs")
        out = np.where(mask, white - np.abs(noise()), f)
    elif kind == "missing":
        mask = np.ones(f.shape, bool)
        level = (white, black, black + 0.5 * span)[int(rng.choice(3, p=[0.4, 0.4, 0.2]))]
        out = np.full_like(f, level) + noise()
    elif kind in ("crack", "fold"):
        lo, hi = (4, 24) if kind == "crack" else (8, 48)
        width = rng.uniform(lo, hi) * min(1.0, s / 256)
        width = max(width, 3.0)
        across, normal, mask = _band(f.shape, rng, width)
        beyond = across > 0
        sign = 1.0 if kind == "fold" else -1.0  # a fold pulls tissue in, a crack pushes it out
        moved = _shift(f, sign * width * normal[0], sign * width * normal[1])
        out = np.where(beyond & ~mask, moved, f)
        if kind == "crack":
            out = np.where(mask, white - np.abs(noise()), out)
        else:
            layers = 0.5 * (f + moved)
            dark = rng.uniform(0.35, 0.6)
            out = np.where(mask, black + (layers - black) * dark, out)
    elif kind == "crease":
        out, mask = crease(f, rng, black, white)
    elif kind == "stain":
        alpha = _soft_blobs(f.shape, rng, int(rng.integers(1, 7)), 8 * min(1.0, s / 256) + 1,
                            40 * min(1.0, s / 512) + 6)
        depth = rng.uniform(0.6, 0.9)
        out = black + (f - black) * (1 - depth * alpha) + noise() * 0.5 * alpha
        mask = alpha >= 0.5
    elif kind == "sediment":
        alpha = _cloud(f.shape, rng, rng.uniform(0.05, 0.3))
        depth = rng.uniform(0.3, 0.6)
        if rng.random() < 0.6:  # darker staining
            out = black + (f - black) * (1 - depth * alpha)
        else:  # a bright haze
            out = f + (white - f) * depth * alpha
        mask = alpha >= 0.5
    elif kind == "defocus":
        mask = np.ones(f.shape, bool)
        soft = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.8, 3.0))
        mean = float(soft.mean())
        out = mean + (soft - mean) * rng.uniform(0.8, 1.0) + noise()
    else:  # blur
        alpha = _soft_blobs(f.shape, rng, int(rng.integers(1, 4)), 0.06 * s, 0.25 * s)
        blurred = cv2.GaussianBlur(f, (0, 0), rng.uniform(2.5, 6.0))
        # the blur removes the noise too; a microscope keeps its detector noise
        out = f + alpha * (blurred + noise() - f)
        mask = alpha >= 0.5
    return cast_to(out, img.dtype, clip=(black, white)), mask


def continuing_structure(section, neighbour, rng=None, *,
                         shape: str = "blobs") -> tuple[np.ndarray, np.ndarray]:
    """Darken the same soft blobs in a section and, a few pixels apart, in its neighbour.

    A dark body that runs through two sections (a dense organelle, a patch of heavy
    staining of the tissue itself) is tissue, not damage: a stain precipitate or a fold
    lies on one section only. This renders such a structure, for the detector to learn
    that the difference matters (it is a negative example: no mask). The blobs are those
    of the ``"stain"`` kind but fainter (darkened by 20-70 %); in the neighbour they are
    moved by up to 3 % of the section's side and darkened by 0.7-1.3 times as much.

    ``shape="line"`` draws a thin dark curved line instead (a myelin sheath or a membrane
    seen edge-on, 2-16 px wide: :func:`~.creases.continuing_line`), which a thin fold
    (``"crease"``) must be told apart from.

    Parameters
    ----------
    section, neighbour : array_like, shape (H, W)
        Clean sections of the same shape and dtype, at least 32x32. Not modified.
    rng : numpy.random.Generator or int or None
    shape : {"blobs", "line"}, keyword-only

    Returns
    -------
    section, neighbour : ndarray, shape (H, W), the input dtype
    """
    sec, nbr = as_slice(section), as_slice(neighbour, name="neighbour")
    if sec.shape != nbr.shape:
        raise ValueError(f"section and neighbour must have the same shape, got {sec.shape} "
                         f"and {nbr.shape}.")
    if min(sec.shape) < 32:
        raise ValueError(f"the sections must be at least 32x32 pixels, got {sec.shape}.")
    if shape not in ("blobs", "line"):
        raise ValueError(f"unknown shape {shape!r}; expected 'blobs' or 'line'.")
    rng = np.random.default_rng(rng)
    if shape == "line":
        black, white = _range(sec)
        a, b = continuing_line(sec.astype(np.float32), nbr.astype(np.float32), rng,
                               black, white)
        return (cast_to(a, sec.dtype, clip=(black, white)),
                cast_to(b, nbr.dtype, clip=(black, white)))
    s = min(sec.shape)
    alpha = _soft_blobs(sec.shape, rng, int(rng.integers(1, 4)), 8 * min(1.0, s / 256) + 1,
                        40 * min(1.0, s / 512) + 6)
    depth = rng.uniform(0.2, 0.7)
    reach = 0.03 * s
    moved = _shift(alpha, rng.uniform(-reach, reach), rng.uniform(-reach, reach))
    out = []
    for img, a, d in ((sec, alpha, depth), (nbr, moved, depth * rng.uniform(0.7, 1.3))):
        black, white = _range(img)
        f = black + (img.astype(np.float32) - black) * (1 - min(d, 0.9) * a)
        out.append(cast_to(f, img.dtype, clip=(black, white)))
    return out[0], out[1]
