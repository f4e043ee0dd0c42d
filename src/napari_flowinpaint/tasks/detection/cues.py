"""What the damage detector looks at: the stack's grey scale, the network's input channels
and the full-resolution cues (blank sections, bright blank regions, neighbours' holes).

Mask convention of the package: ``True`` marks a *damaged* pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

from ...engine import as_slice

__all__ = ["stack_scale", "to_unit", "detector_input", "is_blank", "bright_blank",
           "without_holes", "label_regions", "match_neighbour", "stack_level", "level_section"]


def _samples(stack) -> list[np.ndarray]:
    """Up to 9 sections spread over the stack, checked (finite grey levels: see
    :func:`~napari_flowinpaint.engine.as_slice`)."""
    n = stack.shape[0]
    picks = sorted(set(np.linspace(0, n - 1, min(n, 9)).round().astype(int).tolist()))
    return [as_slice(np.asarray(stack[p]), name=f"stack[{p}]") for p in picks]


def _work_dtype(a) -> type:
    """float64 for float data (any scale: 1e-20 or 3e38 neither underflows nor overflows),
    float32 for integers (as before)."""
    return np.float64 if np.asarray(a).dtype.kind == "f" else np.float32


def stack_scale(stack, level: tuple[float, float] | None = None) -> tuple[float, float]:
    """Grey levels mapped to 0 and 1 for the detector: the 0.5 and 99.5 percentiles of up
    to 9 sections spread over the stack, pooled (each brought to ``level`` first, when
    given: see :func:`level_section`).

    Constant sections are left out, and so are sections whose own percentiles lie far from
    the others' (more than 3 median absolute deviations and more than 20 % of the typical
    range from their median): a white hole, a blank or a black section would otherwise
    stretch the scale of every other section. ISBI 2012 sections vary by up to 15 % of the
    range on their own; a white hole in a FIB-SEM section moves its 99.5 percentile by 40 %.
    Scale-free: float data is measured in float64 and every test is relative to the data's
    own range, so that the stack times any factor, plus any offset, gets the same scale in
    its units.

    Raises
    ------
    ValueError
        When a sampled section holds NaN or infinite values.
    """
    samples = _samples(stack)
    usable = [s for s in samples if float(s.max()) > float(s.min())] or samples
    work = _work_dtype(samples[0])
    if level is not None:
        usable = [_levelled(s, level) for s in usable]
    subs = [s[:: max(1, s.shape[0] // 256), :: max(1, s.shape[1] // 256)].astype(work)
            for s in usable]
    own = np.array([np.percentile(v, (0.5, 99.5)) for v in subs])  # (sections, 2)
    centre = np.median(own, axis=0)
    spread = np.median(np.abs(own - centre), axis=0)
    room = np.maximum(3 * spread, 0.2 * float(centre[1] - centre[0]))
    typical = (np.abs(own - centre) <= room).all(axis=1)
    vals = np.concatenate([v.ravel() for v, ok in zip(subs, typical, strict=True) if ok])
    lo, hi = (float(v) for v in np.percentile(vals, (0.5, 99.5)))
    if not hi - lo > _tiny(lo, hi):
        lo, hi = float(vals.min()), float(vals.max())
    if not hi - lo > _tiny(lo, hi):  # a constant stack: any unit will do
        hi = lo + max(abs(lo), 1.0)
    return lo, hi


def _tiny(*values: float) -> float:
    """A grey-level difference that is no difference at these values: 1e-6 of 1 for
    data around 0..1 (as before), relative to the values' magnitude for large ones, and
    never below what float64 can tell apart."""
    size = max([abs(float(v)) for v in values] + [0.0])
    return max(1e-6 * min(size, 1.0), 64 * np.spacing(size)) if size else 0.0


def _level(section) -> tuple[float, float]:
    """Median and median absolute deviation of a section's grey levels (every 2nd pixel)."""
    sub = np.asarray(section)[::2, ::2].astype(_work_dtype(section))
    med = float(np.median(sub))
    return med, float(np.median(np.abs(sub - med)))


def stack_level(stack) -> tuple[float, float]:
    """What is normal for *this* stack: the median, over up to 9 sections spread through it
    (constant ones left out), of each section's median grey level and of its median absolute
    deviation. :func:`level_section` brings every section to it.

    Raises
    ------
    ValueError
        When a sampled section holds NaN or infinite values.
    """
    levels = [_level(s) for s in _samples(stack) if float(s.max()) > float(s.min())]
    if not levels:
        return 0.0, 0.0
    return float(np.median([m for m, _ in levels])), float(np.median([d for _, d in levels]))


def to_unit(section, scale: tuple[float, float]) -> np.ndarray:
    """``section`` with the grey levels ``scale`` maps to 0 and 1 at 0 and 1 (float32),
    computed in float64: what the detector judges float data from, whatever its scale."""
    lo, hi = scale
    return ((np.asarray(section, np.float64) - lo) / (hi - lo)).astype(np.float32)


def level_section(section, level: tuple[float, float], like=None) -> np.ndarray:
    """``section`` (float32) with its median and median absolute deviation set to the stack's
    (``level``, from :func:`stack_level`): a section imaged brighter, darker, or with more or
    less contrast than the rest of the stack (flicker) is judged as if it were not.

    ``like`` (sections already in ``section``'s grey levels, e.g. its neighbours matched to
    it by :func:`match_neighbour`) gives the median and deviation instead: damage in the
    section (a dark fold, a white hole) then does not move them.
    """
    return _levelled(section, level, like).astype(np.float32, copy=False)


def _levelled(section, level: tuple[float, float], like=None) -> np.ndarray:
    """:func:`level_section` in float64 for float data (no overflow at any scale)."""
    f = np.asarray(section)
    f = f.astype(_work_dtype(f), copy=False)
    like = [x for x in (like or ()) if x is not None]
    levels = [_level(x) for x in like] if like else [_level(f)]
    med = float(np.mean([m for m, _ in levels]))
    dev = float(np.mean([d for _, d in levels]))
    typical_med, typical_dev = level
    if dev <= _tiny(med) or typical_dev <= 0:
        return f
    gain = float(np.clip(typical_dev / dev, 1 / 3, 3.0))
    return (f - med) * gain + typical_med


def _half(f: np.ndarray) -> np.ndarray:
    if min(f.shape) < 4:
        return f
    return cv2.resize(f, ((f.shape[1] + 1) // 2, (f.shape[0] + 1) // 2),
                      interpolation=cv2.INTER_AREA)


def _pool2(f: np.ndarray, how) -> np.ndarray:
    """2 x 2 max or min pooling to the size :func:`_half` gives (edge rows repeated)."""
    h, w = f.shape
    f = np.pad(f, ((0, h % 2), (0, w % 2)), mode="edge")
    return how(f.reshape(f.shape[0] // 2, 2, f.shape[1] // 2, 2), axis=(1, 3))


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
    unit = (np.asarray(section, np.float32) - lo) / (hi - lo)
    if min(unit.shape) < 4:
        raise ValueError(f"sections must be at least 4x4 pixels, got {unit.shape}.")

    def cues(s, u=None):
        hit = cache.get(id(s)) if cache is not None else None
        if hit is not None and hit[0] is s and hit[1] == (lo, hi):
            return hit[2]
        if u is None:
            u = (np.asarray(s, np.float32) - lo) / (hi - lo)
        out = (_half(u), _band_energy_half(u))
        if cache is not None:
            cache[id(s)] = (s, (lo, hi), out)
        return out

    c_prev, c_sec, c_next = cues(prev), cues(section, unit), cues(next)
    chans = [c_prev[0], c_sec[0], c_next[0], _pool2(unit, np.max), _pool2(unit, np.min),
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


def _tissue_top(neighbour, scale: tuple[float, float], *, near: bool = True) -> np.ndarray:
    """The brightest tissue of ``neighbour`` near each pixel, in units of ``scale``, at half
    resolution (float32, every second row and column): its 99.9th percentile, lowered (to
    its 99.5th at least) where it holds nothing that bright within :data:`TISSUE_NEAR` of
    the side; with ``near=False`` its 99.9th percentile everywhere.

    A small bright speck in a neighbour (a few hundred saturated pixels, common on ssTEM
    film) sets the 99.9th percentile; taken for the whole section, that level hid the cracks
    of the next section (no brighter than the speck) wherever they ran. Never above the
    99.9th percentile: a pixel brighter than that level is brighter than this one too.
    """
    lo, hi = scale
    g = cv2.GaussianBlur((np.asarray(neighbour, np.float32) - lo) / (hi - lo), (0, 0), 1.5)
    g = g[::2, ::2]
    top, floor = np.percentile(g, [99.9, 99.5])
    if not near:
        return np.full(g.shape, top, np.float32)
    r = max(1, round(TISSUE_NEAR * max(g.shape)))
    nearby = cv2.dilate(g, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
    return np.clip(nearby, floor, top)


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
    lo, hi = scale
    u = (np.asarray(section, np.float32) - lo) / (hi - lo)
    g = cv2.GaussianBlur(u, (0, 0), 1.5)
    tops = [_tissue_top(n, scale, near=near) for n in neighbours if n is not None]
    m = cv2.GaussianBlur(u, (0, 0), 1.0)
    sd = np.sqrt(np.maximum(cv2.GaussianBlur(u * u, (0, 0), 1.0) - m * m, 0.0))
    flat = sd < 0.6 * float(np.median(sd[::2, ::2]))
    if tops:  # the half-resolution maps brought to full resolution (each pixel's own)
        top = cv2.resize(np.max(tops, axis=0), (u.shape[1], u.shape[0]),
                         interpolation=cv2.INTER_NEAREST)
    else:  # alone: the brightest textured pixels are tissue
        top = np.full(u.shape, np.percentile(g[~flat], 99.9) if (~flat).any() else 1.0,
                      np.float32)
    bright = g > top + 0.02
    if not bright.any():
        return bright
    n, labels, area = label_regions(bright)
    inside = labels[bright]
    flat_count = np.bincount(inside, weights=flat[bright], minlength=n)
    excess = np.bincount(inside, weights=g[bright] - top[bright], minlength=n) / np.maximum(area, 1)
    keep = ((flat_count >= 0.3 * area) | (excess >= far)) & (area >= 16)
    keep[0] = False
    return keep[labels]


def without_holes(neighbour, section, other, scale: tuple[float, float]):
    """``neighbour`` with its own bright blank regions (holes, cracks: see
    :func:`bright_blank`, judged against ``section``) filled from the ``other`` neighbour, or
    from ``section`` when there is none; ``neighbour`` itself when it has none (None stays
    None). A hole in a neighbour is not damage of the section, but it disagrees with it
    strongly and raises the neighbours' brightest tissue level."""
    if neighbour is None:
        return None
    # the section's level everywhere: judged near each pixel, the bright tissue of a neighbour
    # next to a blurred or stained section (whose brightest pixels are dimmed) was taken for
    # holes and replaced, and the section's damage went unseen
    holes = bright_blank(neighbour, (section,), scale, near=False)
    if not holes.any():
        return neighbour
    holes = cv2.dilate(holes.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)  # rims
    out = np.array(neighbour, copy=True)
    out[holes] = np.asarray(other if other is not None else section)[holes]
    return out


def label_regions(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected regions of ``mask``: their number (background 0 included), the label
    image and each label's pixel count."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                           connectivity=8)
    return n, labels, stats[:, cv2.CC_STAT_AREA]


def match_neighbour(neighbour, section, *, blocks: int = 16):
    """``neighbour`` with its brightness and contrast matched to ``section`` (float32), so
    that a section imaged brighter or with more contrast than its neighbours (flicker between
    sections, common in serial-section EM) is not taken for damage.

    The stack's own sections say what is normal: the section and its neighbour are averaged
    over a ``blocks`` x ``blocks`` grid, and a line ``section = a * neighbour + b`` is fitted
    to the block means by iteratively reweighted least squares (Tukey's biweight), so that
    the blocks holding damage, a minority, are left out. The map itself then matches the
    mean and spread of the blocks kept (a regression slope would be too flat: two sections
    never agree block for block). ``a`` is kept within [1/3, 3]; None stays None.
    """
    if neighbour is None:
        return None
    f = np.asarray(neighbour, np.float32)
    s = np.asarray(section, np.float32)
    h, w = s.shape
    k = max(1, min(blocks, h // 4, w // 4))
    x = cv2.resize(f, (k, k), interpolation=cv2.INTER_AREA).ravel().astype(np.float64)
    y = cv2.resize(s, (k, k), interpolation=cv2.INTER_AREA).ravel().astype(np.float64)
    if np.ptp(x) < 1e-6:
        return f
    weight = np.ones_like(x)
    a, b = 1.0, 0.0
    for _ in range(10):
        sw = weight.sum()
        if sw < 4:
            break
        mx, my = (weight * x).sum() / sw, (weight * y).sum() / sw
        vx = (weight * (x - mx) ** 2).sum()
        if vx < 1e-9:
            break
        a = float(np.clip((weight * (x - mx) * (y - my)).sum() / vx, 0.5, 2.0))
        b = my - a * mx
        r = y - (a * x + b)
        c = 4.685 * max(1.4826 * np.median(np.abs(r)), 1e-3 * max(np.ptp(y), 1e-6))
        weight = np.where(np.abs(r) < c, (1 - (r / c) ** 2) ** 2, 0.0)
    kept = weight > 0.5
    if kept.sum() >= 8 and x[kept].std() > 1e-6:
        a = float(np.clip(y[kept].std() / x[kept].std(), 1 / 3, 3.0))
        b = float(y[kept].mean() - a * x[kept].mean())
    return (f * a + b).astype(np.float32)
