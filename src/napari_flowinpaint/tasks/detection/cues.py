"""What the damage detector looks at: the network's input channels and the full-resolution
cues (blank sections, bright blank regions, neighbours' holes); the stack's grey scale and
level are in :mod:`.levels` (and are found here too).

Mask convention of the package: ``True`` marks a *damaged* pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..simulation import noise_level
from .levels import (  # noqa: F401 (the grey-level functions, as before)
    level_section,
    match_neighbour,
    measure_level,
    stack_level,
    stack_scale,
    to_unit,
)

__all__ = ["stack_scale", "to_unit", "detector_input", "is_blank", "bright_blank",
           "blank_pixels", "without_holes", "label_regions", "match_neighbour", "stack_level",
           "level_section", "measure_level", "brightest_tissue", "select_regions"]


def _unit(section, scale: tuple[float, float]) -> np.ndarray:
    """``section`` in units of ``scale`` (float32 arithmetic; :func:`to_unit` is float64)."""
    lo, hi = scale
    return (np.asarray(section, np.float32) - lo) / (hi - lo)


def _half(f: np.ndarray) -> np.ndarray:
    if min(f.shape) < 4:
        return f
    return cv2.resize(f, ((f.shape[1] + 1) // 2, (f.shape[0] + 1) // 2),
                      interpolation=cv2.INTER_AREA)


def _pool2(f: np.ndarray, how) -> np.ndarray:
    """2 x 2 max or min pooling (``how``: ``np.maximum`` or ``np.minimum``) to the size
    :func:`_half` gives (edge rows repeated)."""
    h, w = f.shape
    if h % 2 or w % 2:
        f = np.pad(f, ((0, h % 2), (0, w % 2)), mode="edge")
    return how(how(f[0::2, 0::2], f[0::2, 1::2]), how(f[1::2, 0::2], f[1::2, 1::2]))


def _band_energy_half(f: np.ndarray) -> np.ndarray:
    """Log local energy of the band of spatial frequencies that blur removes first
    (difference of Gaussians of sigma 1 and 2.5 at full resolution, squared), smoothed and
    returned at half resolution (the size :func:`_half` gives), roughly in [-1, 1]."""
    band = cv2.GaussianBlur(f, (0, 0), 1.0) - cv2.GaussianBlur(f, (0, 0), 2.5)
    e = cv2.GaussianBlur(_half(band * band), (0, 0), 1.5)  # sigma 3 at full resolution
    return (np.log10(e + 1e-5) + 2.5) / 1.5


def detector_input(prev, section, next, scale: tuple[float, float], *,
                   cache: dict | None = None) -> np.ndarray:
    """The detector's (8, h, w) float32 input at half resolution (h = ceil(H / 2)).

    Channels: previous, section, next (grey levels mapped to [0, 1] by ``scale``, area
    averaged); the section's 2 x 2 maximum and minimum (so that thin bright cracks and dark
    lines survive the halving); the band energy of previous, section and next, computed at
    full resolution (what blur removes). A missing neighbour (None) is replaced by the other
    one, or by the section itself when both are missing.

    ``cache`` (a dict the caller keeps) holds each section's half-resolution channels, so
    that a pass over a stack computes them once per section instead of three times; an
    entry is used only for the very same array object and the same ``scale``.
    """
    if prev is None:
        prev = next if next is not None else section
    if next is None:
        next = prev
    lo, hi = scale
    unit = _unit(section, scale)
    if min(unit.shape) < 4:
        raise ValueError(f"sections must be at least 4x4 pixels, got {unit.shape}.")

    def cues(s, u=None):
        hit = cache.get(id(s)) if cache is not None else None
        if hit is not None and hit[0] is s and hit[1] == (lo, hi):
            return hit[2]
        if u is None:
            u = _unit(s, scale)
        out = (_half(u), _band_energy_half(u))
        if cache is not None:
            cache[id(s)] = (s, (lo, hi), out)
        return out

    c_prev, c_sec, c_next = cues(prev), cues(section, unit), cues(next)
    chans = [c_prev[0], c_sec[0], c_next[0], _pool2(unit, np.maximum), _pool2(unit, np.minimum),
             c_prev[1], c_sec[1], c_next[1]]
    return np.stack(chans)


def is_blank(section, scale: tuple[float, float]) -> bool:
    """True when ``section`` shows no structure at all (a missing section): constant, or
    only pixel noise (the standard deviation of its smoothed grey levels is under 2 % of the
    stack's range)."""
    f = np.asarray(section, np.float32)
    if float(f.max()) == float(f.min()):
        return True
    lo, hi = scale
    g = cv2.GaussianBlur(_half((f - lo) / (hi - lo)), (0, 0), 2.0)
    return float(g.std()) < 0.02


#: How far around a pixel :func:`bright_blank` looks for the neighbours' brightest tissue,
#: as a fraction of the section's side: beyond the shift of tissue between serial sections
#: (a few %).
TISSUE_NEAR = 1 / 16


def _tissue_top(neighbour, scale: tuple[float, float], *, near: bool = True):
    """The brightest tissue of ``neighbour`` near each pixel, in units of ``scale``, at half
    resolution (every second row and column): its 99.9th percentile, lowered (to its 99.5th
    at least) where it holds nothing that bright within :data:`TISSUE_NEAR` of the side;
    with ``near=False`` its 99.9th percentile everywhere (one float32 number).

    A small bright speck in a neighbour (a few hundred saturated pixels, common on ssTEM
    film) sets the 99.9th percentile; taken for the whole section, that level hid the cracks
    of the next section (no brighter than the speck) wherever they ran. Never above the
    99.9th percentile: a pixel brighter than that level is brighter than this one too.
    """
    g = cv2.GaussianBlur(_unit(neighbour, scale), (0, 0), 1.5)
    g = g[::2, ::2]
    if not near:
        return np.float32(np.percentile(g, 99.9))
    top, floor = np.percentile(g, [99.9, 99.5])
    r = max(1, round(TISSUE_NEAR * max(g.shape)))
    nearby = cv2.dilate(g, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
    return np.clip(nearby, floor, top)


def _flat(u: np.ndarray) -> np.ndarray:
    """Where ``u`` is flat: local standard deviation (sigma 1) under 0.6 times its median."""
    m = cv2.GaussianBlur(u, (0, 0), 1.0)
    sd = np.sqrt(np.maximum(cv2.GaussianBlur(u * u, (0, 0), 1.0) - m * m, 0.0))
    return sd < 0.6 * float(np.median(sd[::2, ::2]))


def bright_blank(section, neighbours, scale: tuple[float, float], *,
                 far: float = 0.1, near: bool = True) -> np.ndarray:
    """Regions brighter than any tissue and mostly flat: blank film holes, cracks, tears.

    Where the electron beam meets no tissue the image saturates and holds only detector
    noise. A region qualifies when its lightly smoothed grey levels exceed the brightest
    tissue of the neighbours near it (:func:`_tissue_top`: their 99.9th percentile, lowered
    where they show nothing that bright nearby) and either at least 30 % of its pixels are
    flat (local standard deviation under 0.6 times the section's median) or it lies far above
    that tissue (by ``far`` on average, in units of the stack's grey range): a thin crack has
    no flat pixel, its edges are everywhere. Without neighbours the brightest tissue is the
    99.9th percentile of the section's own textured (not flat) pixels. This full-resolution
    cue finds thin cracks that the half-resolution network can miss: the detector adds the
    regions that touch what the network found (all of them for a section without
    neighbours). ``near=False`` takes the neighbours' 99.9th percentile everywhere (the more
    cautious level, for judging a neighbour against a section that may itself be damaged:
    see :func:`without_holes`).
    """
    u, g = _smoothed(section, scale)
    tops = [_tissue_top(n, scale, near=near) for n in neighbours if n is not None]
    flat = None
    if tops and not near:  # one level everywhere
        top = max(tops)
    elif tops:  # the half-resolution maps brought to full resolution (each pixel's own)
        top = cv2.resize(np.max(tops, axis=0), (u.shape[1], u.shape[0]),
                         interpolation=cv2.INTER_NEAREST)
    else:  # alone: the brightest textured pixels are tissue
        flat = _flat(u)
        top = np.float32(np.percentile(g[~flat], 99.9) if (~flat).any() else 1.0)
    return _bright_over(u, g, top, far=far, flat=flat)


#: How close to the section's brightest grey level a pixel must be to count as white (the
#: detector saturated), in units of the stack's grey range, at least (:func:`blank_pixels`).
WHITE_TOLERANCE = 0.02


def blank_pixels(section, scale: tuple[float, float]) -> np.ndarray:
    """Pixels that hold no tissue texture: flat (as :func:`bright_blank` judges it) or white,
    within :data:`WHITE_TOLERANCE` of the section's brightest grey level, or within its
    pixel noise (:func:`~napari_flowinpaint.tasks.simulation.noise_level`) when that is more.

    Where the beam meets no tissue the detector saturates or shows only its noise, so a
    film hole is mostly white or flat; bright cytoplasm keeps its texture and only a few
    of its pixels reach the top. :func:`~.postprocess.decide_mask` asks this of a bright
    region that the network is not sure of.
    """
    u = _unit(section, scale)
    tol = max(WHITE_TOLERANCE, noise_level(u))
    return _flat(u) | (u >= float(u.max()) - tol)


def _smoothed(section, scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """``section`` in units of ``scale`` (float32) and lightly smoothed (sigma 1.5)."""
    u = _unit(section, scale)
    return u, cv2.GaussianBlur(u, (0, 0), 1.5)


def _bright_over(u, g, top, *, far: float, flat=None) -> np.ndarray:
    """:func:`bright_blank` of the section ``u`` (smoothed: ``g``) over the tissue level
    ``top`` (a number, or one per pixel); ``flat``: :func:`_flat` of ``u`` when known."""
    bright = g > top + 0.02
    if not bright.any():
        return bright
    flat = _flat(u) if flat is None else flat
    n, labels, area = label_regions(bright)
    inside = labels[bright]
    flat_count = np.bincount(inside, weights=flat[bright], minlength=n)
    above = g[bright] - (top[bright] if np.ndim(top) else top)
    excess = np.bincount(inside, weights=above, minlength=n) / np.maximum(area, 1)
    keep = ((flat_count >= 0.3 * area) | (excess >= far)) & (area >= 16)
    keep[0] = False
    return select_regions(labels, keep, bright)


def brightest_tissue(section, scale: tuple[float, float]) -> np.float32:
    """The brightest tissue of ``section`` in units of ``scale``: the 99.9th percentile of
    its lightly smoothed grey levels (what :func:`without_holes` judges a neighbour by)."""
    return _tissue_top(section, scale, near=False)


def without_holes(neighbour, section, other, scale: tuple[float, float], *, top=None):
    """``neighbour`` with its own bright blank regions (holes, cracks: see
    :func:`bright_blank`, judged against ``section``) filled from the ``other`` neighbour, or
    from ``section`` when there is none; ``neighbour`` itself when it has none (None stays
    None). A hole in a neighbour is not damage of the section, but it disagrees with it
    strongly and raises the neighbours' brightest tissue level. ``top``:
    :func:`brightest_tissue` of ``section``, when already known (both neighbours are judged
    by it)."""
    if neighbour is None:
        return None
    # the section's level everywhere: judged near each pixel, the bright tissue of a neighbour
    # next to a blurred or stained section (whose brightest pixels are dimmed) was taken for
    # holes and replaced, and the section's damage went unseen
    top = brightest_tissue(section, scale) if top is None else top
    holes = _bright_over(*_smoothed(neighbour, scale), top, far=0.1)
    if not holes.any():
        return neighbour
    holes = cv2.dilate(holes.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)  # rims
    out = np.array(neighbour, copy=True)
    out[holes] = np.asarray(other if other is not None else section)[holes]
    return out


def label_regions(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected regions of ``mask``: their number (background 0 included), the label
    image and each label's pixel count (counted over the regions' pixels: OpenCV's own
    statistics cost five times the labelling)."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        mask = np.ascontiguousarray(mask).view(np.uint8)
    else:
        mask = mask.astype(np.uint8)
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    inside = labels[mask != 0]
    area = np.bincount(inside, minlength=n)
    area[0] = labels.size - inside.size
    return n, labels, area


def select_regions(labels: np.ndarray, keep: np.ndarray, where=None) -> np.ndarray:
    """``keep[labels]``: the pixels of the regions kept (``keep``, one bool per label, its
    first one for the background False); ``where``, the regions' pixels (``labels > 0``),
    when known, spares looking up every pixel of the background."""
    if where is None:
        return keep[labels]
    out = np.zeros(labels.shape, bool)
    out[where] = keep[labels[where]]
    return out
