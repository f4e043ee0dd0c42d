"""The stack's grey scale and level, and each section brought to them: what is normal for
the stack's grey levels (:func:`stack_scale`, :func:`stack_level`), flicker between sections
taken out (:func:`match_neighbour`, :func:`level_section`).
"""

from __future__ import annotations

import cv2
import numpy as np

from ...engine import as_slice

__all__ = ["stack_scale", "stack_level", "scale_and_level", "to_unit", "level_section",
           "measure_level", "match_neighbour"]

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
    return _scale_of(_samples(stack), level)


def scale_and_level(stack, *, levelled: bool = True) -> tuple[tuple[float, float],
                                                              tuple[float, float]]:
    """``(stack_scale(stack, level if levelled else None), level)`` with ``level =
    stack_level(stack)``, the sampled sections read and measured once."""
    samples = _samples(stack)
    varied = [s for s in samples if float(s.max()) > float(s.min())]
    levels = [_level(s) for s in varied]
    level = _typical_level(levels)
    return _scale_of(samples, level if levelled else None, levels if varied else None), level


def _scale_of(samples, level, levels=None) -> tuple[float, float]:
    """:func:`stack_scale` of the sampled sections; ``levels``: :func:`_level` of each
    non-constant one, when known."""
    usable = [s for s in samples if float(s.max()) > float(s.min())] or samples
    work = _work_dtype(samples[0])
    levels = [None] * len(usable) if levels is None else levels
    subs = [s[:: max(1, s.shape[0] // 256), :: max(1, s.shape[1] // 256)] for s in usable]
    if level is not None:  # levelled pixel by pixel: the sampled pixels are enough
        subs = [_levelled(v, level, measured=m if m is not None else _level(s))
                for v, s, m in zip(subs, usable, levels, strict=True)]
    subs = [v.astype(work) for v in subs]
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
    """Median and median absolute deviation of a section's grey levels (every 2nd pixel).

    8- and 16-bit sections are counted (a histogram gives the very numbers the sorting
    median gives, several times faster)."""
    sub = np.asarray(section)[::2, ::2]
    if sub.dtype in (np.uint8, np.uint16) and sub.size:
        return _counted_level(np.bincount(sub.ravel()))
    sub = sub.astype(_work_dtype(section))
    med = float(np.median(sub, overwrite_input=True))
    return med, float(np.median(np.abs(sub - med), overwrite_input=True))


def _counted_median(values: np.ndarray, counts: np.ndarray) -> float:
    """``np.median`` of ``values`` (ascending, exactly representable in float32) each
    repeated ``counts`` times: the middle one, or the mean of the middle two."""
    ends = np.cumsum(counts)
    n = int(ends[-1])
    pick = values[np.searchsorted(ends, [(n - 1) // 2, n // 2], side="right")]
    return float(pick[0]) if n % 2 else float((pick[0] + pick[1]) / 2)


def _counted_level(hist: np.ndarray) -> tuple[float, float]:
    """:func:`_level` from the histogram of integer grey levels (``hist[v]``: how many
    pixels hold ``v``)."""
    held = np.flatnonzero(hist)
    counts = hist[held]
    med = _counted_median(held.astype(np.float64), counts)
    dev = np.abs(held - med)
    order = np.argsort(dev, kind="stable")
    return med, _counted_median(dev[order], counts[order])


def stack_level(stack) -> tuple[float, float]:
    """What is normal for *this* stack: the median, over up to 9 sections spread through it
    (constant ones left out), of each section's median grey level and of its median absolute
    deviation. :func:`level_section` brings every section to it.

    Raises
    ------
    ValueError
        When a sampled section holds NaN or infinite values.
    """
    return _typical_level([_level(s) for s in _samples(stack)
                           if float(s.max()) > float(s.min())])


def _typical_level(levels) -> tuple[float, float]:
    if not levels:
        return 0.0, 0.0
    return float(np.median([m for m, _ in levels])), float(np.median([d for _, d in levels]))


def to_unit(section, scale: tuple[float, float]) -> np.ndarray:
    """``section`` with the grey levels ``scale`` maps to 0 and 1 at 0 and 1 (float32),
    computed in float64: what the detector judges float data from, whatever its scale."""
    lo, hi = scale
    return ((np.asarray(section, np.float64) - lo) / (hi - lo)).astype(np.float32)


def level_section(section, level: tuple[float, float], like=None, *,
                  measured: tuple[float, float] | None = None) -> np.ndarray:
    """``section`` (float32) with its median and median absolute deviation set to the stack's
    (``level``, from :func:`stack_level`): a section imaged brighter, darker, or with more or
    less contrast than the rest of the stack (flicker) is judged as if it were not.

    ``like`` (sections already in ``section``'s grey levels, e.g. its neighbours matched to
    it by :func:`match_neighbour`) gives the median and deviation instead: damage in the
    section (a dark fold, a white hole) then does not move them. ``measured``: what
    :func:`measure_level` gives for ``like`` (or for ``section``), when already known (the
    three sections judged together are levelled by the same numbers).
    """
    return _levelled(section, level, like, measured).astype(np.float32, copy=False)


def measure_level(sections) -> tuple[float, float]:
    """The median and median absolute deviation that :func:`level_section` brings to the
    stack's level when given these ``sections`` as ``like``: the mean over the sections (None
    left out) of each one's own (every second pixel)."""
    levels = [_level(x) for x in sections if x is not None]
    return float(np.mean([m for m, _ in levels])), float(np.mean([d for _, d in levels]))


def _levelled(section, level: tuple[float, float], like=None, measured=None) -> np.ndarray:
    """:func:`level_section` in float64 for float data (no overflow at any scale)."""
    f = np.asarray(section)
    if measured is None:
        like = [x for x in (like or ()) if x is not None]
        measured = measure_level(like or [f])
    f = f.astype(_work_dtype(f), copy=False)
    med, dev = measured
    typical_med, typical_dev = level
    if dev <= _tiny(med) or typical_dev <= 0:
        return f
    gain = float(np.clip(typical_dev / dev, 1 / 3, 3.0))
    return (f - med) * gain + typical_med


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
