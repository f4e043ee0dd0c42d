"""Automatic detection of damaged regions in a section stack.

Each section is judged together with its nearest usable neighbours above and below by a
small learned network (:class:`~napari_flowinpaint.engine.nets.DamageDetectorNet`, bundled
as ``weights/detector-cpu.safetensors``) trained on simulated damage of real stacks
(:func:`~napari_flowinpaint.tasks.damage.simulate_damage`: blank holes, missing sections,
cracks, folds, stain precipitates, sediment, blur). It sees what the section shows itself
and how it disagrees with its neighbours, so it works with two, one or no neighbours.
A blank (structureless) section is always reported as wholly missing.

Mask convention of the package: ``True`` marks a *damaged* pixel.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from ..engine import as_slice
from ..engine.weights import load_detector

__all__ = ["detect_damage", "iter_detect_damage", "damage_scores", "damaged_slices",
           "refine_mask", "stack_scale", "detector_input", "is_blank", "bright_blank",
           "damage_probability", "decide_mask", "without_holes"]

_NETS: dict = {}


def _detector(weights=None):
    key = str(weights) if weights is not None else None
    if key not in _NETS:
        net = load_detector(weights)
        _NETS[key] = net.to(memory_format=torch.channels_last)
    return _NETS[key]


def stack_scale(stack) -> tuple[float, float]:
    """Grey levels mapped to 0 and 1 for the detector: the 0.5 and 99.5 percentiles of up
    to 9 sections spread over the stack, pooled.

    Constant sections are left out, and so are sections whose own percentiles lie far from
    the others' (more than 3 median absolute deviations and more than 20 % of the typical
    range from their median): a white hole, a blank or a black section would otherwise
    stretch the scale of every other section. ISBI 2012 sections vary by up to 15 % of the
    range on their own; a white hole in a FIB-SEM section moves its 99.5 percentile by 40 %.
    """
    n = stack.shape[0]
    picks = sorted(set(np.linspace(0, n - 1, min(n, 9)).round().astype(int).tolist()))
    samples = [np.asarray(stack[p]) for p in picks]
    usable = [s for s in samples if float(s.max()) > float(s.min())] or samples
    subs = [s[:: max(1, s.shape[0] // 256), :: max(1, s.shape[1] // 256)].astype(np.float32)
            for s in usable]
    own = np.array([np.percentile(v, (0.5, 99.5)) for v in subs])  # (sections, 2)
    centre = np.median(own, axis=0)
    spread = np.median(np.abs(own - centre), axis=0)
    room = np.maximum(3 * spread, 0.2 * max(float(centre[1] - centre[0]), 1e-6))
    typical = (np.abs(own - centre) <= room).all(axis=1)
    vals = np.concatenate([v.ravel() for v, ok in zip(subs, typical, strict=True) if ok])
    lo, hi = np.percentile(vals, (0.5, 99.5))
    if hi - lo < 1e-6:
        lo, hi = float(vals.min()), float(vals.max())
    if hi - lo < 1e-6:
        hi = lo + 1.0
    return float(lo), float(hi)


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


def bright_blank(section, neighbours, scale: tuple[float, float], *,
                 far: float = 0.1) -> np.ndarray:
    """Regions brighter than any tissue and mostly flat: blank film holes, cracks, tears.

    Where the electron beam meets no tissue the image saturates and holds only detector
    noise. A region qualifies when its lightly smoothed grey levels exceed the brightest
    tissue of the neighbours (their 99.9th percentile; without neighbours, the stack's white
    point) and either at least 30 % of its pixels are flat (local standard deviation under
    0.6 times the section's median) or it lies far above that tissue (by ``far`` on average,
    in units of the stack's grey range): a thin crack has no flat pixel, its edges are
    everywhere. Without neighbours the brightest tissue is the 99.9th percentile
    of the section's own textured (not flat) pixels. This full-resolution cue finds thin
    cracks that the half-resolution network can miss: the detector adds the regions that
    touch what the network found (all of them for a section without neighbours).
    """
    lo, hi = scale
    u = (np.asarray(section, np.float32) - lo) / (hi - lo)
    g = cv2.GaussianBlur(u, (0, 0), 1.5)
    tops = []
    for n in neighbours:
        if n is not None:
            nu = (np.asarray(n, np.float32) - lo) / (hi - lo)
            tops.append(float(np.percentile(cv2.GaussianBlur(nu, (0, 0), 1.5)[::2, ::2], 99.9)))
    m = cv2.GaussianBlur(u, (0, 0), 1.0)
    sd = np.sqrt(np.maximum(cv2.GaussianBlur(u * u, (0, 0), 1.0) - m * m, 0.0))
    flat = sd < 0.6 * float(np.median(sd[::2, ::2]))
    if not tops and (~flat).any():  # alone: the brightest textured pixels are tissue
        tops.append(float(np.percentile(g[~flat], 99.9)))
    top = max(tops) if tops else 1.0
    bright = g > top + 0.02
    if not bright.any():
        return bright
    n, labels, area = _regions(bright)
    inside = labels[bright]
    flat_count = np.bincount(inside, weights=flat[bright], minlength=n)
    excess = np.bincount(inside, weights=g[bright] - top, minlength=n) / np.maximum(area, 1)
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
    holes = bright_blank(neighbour, (section,), scale)
    if not holes.any():
        return neighbour
    holes = cv2.dilate(holes.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)  # rims
    out = np.array(neighbour, copy=True)
    out[holes] = np.asarray(other if other is not None else section)[holes]
    return out


def _regions(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected regions of ``mask``: their number (background 0 included), the label
    image and each label's pixel count."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                           connectivity=8)
    return n, labels, stats[:, cv2.CC_STAT_AREA]


def _count_in(labels: np.ndarray, n: int, where: np.ndarray) -> np.ndarray:
    """Per-label number of pixels where ``where`` is True."""
    return np.bincount(labels[where], minlength=n)


def _extend(mask: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """``mask`` plus the regions of ``extra`` that touch it (within 3 pixels)."""
    if not mask.any() or not extra.any():
        return mask
    near = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    n, labels = cv2.connectedComponents(extra.astype(np.uint8), connectivity=8)
    touch = np.zeros(n, bool)
    touch[np.unique(labels[near & extra])] = True
    touch[0] = False
    return mask | touch[labels]


def decide_mask(p, bright, *, threshold: float = 0.5, alone: bool = False,
                seed_threshold: float = 0.95, snap_bright: bool = True,
                snap_fraction: float = 0.35, snap_margin: int = 6,
                bright_seed: float = 0.7) -> np.ndarray:
    """Turn the network's probability map and the bright-blank cue into a damage mask.

    Parameters
    ----------
    p : ndarray of float, shape (H, W)
        Damage probability (:func:`damage_probability`).
    bright : ndarray of bool, shape (H, W)
        Bright, flat regions (:func:`bright_blank`).
    threshold : float, keyword-only
        A pixel is a candidate when ``p > threshold`` (``1 - sensitivity``).
    alone : bool, keyword-only
        The section has no neighbour: every bright region counts; otherwise only those
        touching a candidate region.
    seed_threshold : float, keyword-only
        Hysteresis: a candidate region is kept only where the network is sure somewhere in
        it (``max p >= seed_threshold``) or where it is largely bright and flat (thin cracks
        the network scores lukewarm). Real damage is scored near 1 in its core; most false
        alarms on real sections (dark cell profiles) stay lukewarm. 0 keeps every region.
    snap_bright : bool, keyword-only
        A region covered by bright-blank pixels for at least ``snap_fraction`` of its area
        (a hole, crack or tear) is replaced by those pixels, grown by one: the
        full-resolution cue draws thin bands more exactly than the half-resolution network.
    snap_fraction : float, keyword-only
    snap_margin : int, keyword-only
        A region is also snapped when at least 95 % of it lies within this many pixels of
        its bright-blank pixels: a crack the network outlines a few pixels too wide (0 turns
        this off).
    bright_seed : float, keyword-only
        A largely bright region kept without a sure pixel still needs a probability of at
        least this somewhere (a bright cell profile is scored low; a thin crack lukewarm).
        Not applied to a section without neighbours.

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    cand = p > threshold
    cand = (cand | bright) if alone else _extend(cand, bright)
    if not cand.any():
        return cand
    n, labels, area = _regions(cand)
    bright_frac = _count_in(labels, n, bright) / np.maximum(area, 1)
    keep = np.ones(n, bool)
    if seed_threshold > 0:
        sure = _count_in(labels, n, p >= seed_threshold) > 0  # regions holding a sure pixel
        bright_ok = bright_frac >= 0.3
        if not alone:  # alone, the network knows less: every bright region counts
            bright_ok &= _count_in(labels, n, p >= bright_seed) > 0
        keep = sure | bright_ok
    keep[0] = False
    out = keep[labels]
    if snap_bright:
        snap = keep & (bright_frac >= snap_fraction)
        if snap_margin > 0 and bright.any():
            # a region that is a bright band plus a rim the network drew too wide
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * snap_margin + 1,) * 2)
            near = cv2.dilate((bright & out).astype(np.uint8), k).astype(bool)
            near_frac = _count_in(labels, n, near & out) / np.maximum(area, 1)
            snap |= keep & (bright_frac > 0) & (near_frac >= 0.95)
        snap[0] = False
        if snap.any():
            region = snap[labels]
            grown = cv2.dilate((bright & region).astype(np.uint8), np.ones((3, 3), np.uint8))
            out = (out & ~region) | (grown.astype(bool) & region)
    return out


def _drop_small(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    if min_pixels <= 1 or not mask.any():
        return mask
    _, labels, area = _regions(mask)
    keep = area >= min_pixels
    keep[0] = False
    return keep[labels]


def refine_mask(mask, *, grow: int = 0, rectangles: bool = False,
                min_area: int = 0) -> np.ndarray:
    """Post-process a damage mask: drop small regions, cover regions by rectangles, grow.

    Parameters
    ----------
    mask : array_like of bool, shape (H, W)
        True marks damaged pixels. Not modified.
    min_area : int, keyword-only
        First, drop regions (8-connected) of fewer pixels than this.
    rectangles : bool, keyword-only
        Then replace each region by its bounding rectangle, as FlowInpaint's Figure 4 marks
        damage.
    grow : int, keyword-only
        Last, grow every region by this many pixels (a disk-shaped dilation).

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    out = np.asarray(mask, bool)
    if out.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {out.shape}.")
    _check_options(0.5, grow, min_area)
    out = _drop_small(out, int(min_area)) if min_area > 1 else out.copy()
    if rectangles and out.any():
        _, _, stats, _ = cv2.connectedComponentsWithStats(out.astype(np.uint8), connectivity=8)
        for x, y, w, h, _a in stats[1:]:
            out[y:y + h, x:x + w] = True
    if grow > 0 and out.any():
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        out = cv2.dilate(out.astype(np.uint8), k).astype(bool)
    return out


def _check_options(sensitivity, grow, min_area) -> float:
    sensitivity = float(sensitivity)
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError(f"sensitivity must lie in [0, 1] (higher finds more), got {sensitivity}.")
    if int(grow) != grow or int(min_area) != min_area or grow < 0 or min_area < 0:
        raise ValueError(f"grow and min_area must be whole numbers >= 0, got grow={grow!r}, "
                         f"min_area={min_area!r}.")
    return sensitivity


def _as_stack(stack):
    shape = tuple(getattr(stack, "shape", np.shape(stack)))
    if len(shape) == 2:
        return None, shape
    if len(shape) != 3:
        raise ValueError(
            f"expected one section (H, W) or a stack (Z, H, W), got shape {shape}. For "
            "multichannel or time-lapse data pick one channel or time point first.")
    if shape[0] < 1:
        raise ValueError("the stack holds no sections.")
    return stack, shape


def damage_probability(prev, section, next, *, scale, weights=None,
                       cache: dict | None = None) -> np.ndarray:
    """Per-pixel damage probability of ``section`` (H, W) float32, from the detector network.

    ``prev`` and ``next`` may be None (no neighbour on that side); ``scale`` maps grey levels
    to [0, 1] (see :func:`stack_scale`); ``cache`` as in :func:`detector_input`.
    """
    net = _detector(weights)
    x = torch.from_numpy(detector_input(prev, section, next, scale, cache=cache))[None]
    with torch.no_grad():
        p = torch.sigmoid(net(x.to(memory_format=torch.channels_last)))[0, 0].numpy()
    h, w = np.shape(section)
    if p.shape != (h, w):
        p = cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)
    return p


def iter_detect_damage(stack, zs=None, *, sensitivity: float = 0.5, grow: int = 0,
                       rectangles: bool = False, min_area: int = 100, weights=None,
                       ) -> Iterator[tuple[int, np.ndarray]]:
    """Detect damage slice by slice, yielding ``(z, mask)`` as each slice is done.

    Stop iterating to cancel: what was yielded is kept. ``zs`` lists the slices (default
    all); see :func:`detect_damage` for the other parameters.
    """
    sensitivity = _check_options(sensitivity, grow, min_area)
    arr, shape = _as_stack(stack)
    if arr is None:
        raise ValueError("iter_detect_damage needs a stack (Z, H, W); for one section use "
                         "detect_damage.")
    n = shape[0]
    zs = list(range(n)) if zs is None else [int(z) for z in zs]
    for z in zs:
        if not -n <= z < n:
            raise IndexError(f"slice {z} is outside the stack of {n} sections (0..{n - 1}).")
    zs = [z % n for z in zs]
    scale = stack_scale(arr)
    threshold = 1.0 - sensitivity
    sections: dict[int, np.ndarray] = {}
    blank: dict[int, bool] = {}
    cues: dict = {}  # half-resolution channels of the cached sections

    def get(k: int) -> np.ndarray:
        if k not in sections:
            sections[k] = as_slice(np.asarray(arr[k]), name=f"stack[{k}]")
            blank[k] = is_blank(sections[k], scale)
        return sections[k]

    def neighbour(z: int, step: int) -> np.ndarray | None:
        for k in (z + step, z + 2 * step):  # skip one missing section
            if 0 <= k < n:
                get(k)
                if not blank[k]:
                    return sections[k]
        return None

    for z in zs:
        sec = get(z)
        if blank[z]:
            mask = np.ones(sec.shape, bool)
        else:
            prev, nxt = neighbour(z, -1), neighbour(z, 1)
            prev, nxt = (without_holes(prev, sec, nxt, scale),
                         without_holes(nxt, sec, prev, scale))
            p = damage_probability(prev, sec, nxt, scale=scale, weights=weights, cache=cues)
            bright = bright_blank(sec, (prev, nxt), scale)
            mask = decide_mask(p, bright, threshold=threshold,
                               alone=prev is None and nxt is None)
        yield z, refine_mask(mask, grow=grow, rectangles=rectangles, min_area=min_area)
        for k in [k for k in sections if k < z - 2]:
            del sections[k], blank[k]
        live = {id(s) for s in sections.values()}  # drop the rest, hole-filled copies too
        for key in [key for key in cues if key not in live]:
            del cues[key]


def detect_damage(stack, z: int | None = None, *, sensitivity: float = 0.5, grow: int = 0,
                  rectangles: bool = False, min_area: int = 100, weights=None,
                  progress: Callable[[int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Propose a damage mask for one section, one slice of a stack, or a whole stack.

    Parameters
    ----------
    stack : array_like, shape (H, W) or (Z, H, W)
        A single section (judged on its own) or a stack of sections, uint8, uint16, float32
        or float64 (numpy, dask or zarr: slices are read one at a time). Not modified.
    z : int or None
        The slice to judge, with its neighbours ``z - 1`` and ``z + 1`` (the next ones out
        when those are blank); None judges every slice.
    sensitivity : float in [0, 1], keyword-only
        Higher finds fainter damage and raises more false alarms: a pixel is damaged when
        the network's probability exceeds ``1 - sensitivity``. 0.5 is the tuned default.
    grow : int, keyword-only
        Grow each detected region by this many pixels (a safety margin for the repair).
    rectangles : bool, keyword-only
        Cover each region by its bounding rectangle.
    min_area : int, keyword-only
        Drop regions of fewer pixels (default 100).
    weights : path, optional, keyword-only
        Detector weights (default: the bundled ``detector-cpu.safetensors``).
    progress : callable(done, total), keyword-only
        Called after each slice when ``z`` is None.
    should_stop : callable() -> bool, keyword-only
        Polled between slices when ``z`` is None; when it returns True, the slices judged so
        far are kept and the others are left empty (False).

    Returns
    -------
    mask : ndarray of bool, shape (H, W) or (Z, H, W)
        True marks the damaged pixels found.

    Examples
    --------
    >>> mask = detect_damage(stack, 12, grow=4)          # doctest: +SKIP
    >>> worst = damaged_slices(stack)[:5]                # doctest: +SKIP
    """
    arr, shape = _as_stack(stack)
    opts = dict(sensitivity=sensitivity, grow=grow, rectangles=rectangles, min_area=min_area,
                weights=weights)
    if arr is None:
        return next(iter_detect_damage(np.asarray(stack)[None], [0], **opts))[1]
    if z is not None:
        return next(iter_detect_damage(arr, [z], **opts))[1]
    out = np.zeros(shape, bool)
    for i, (k, m) in enumerate(iter_detect_damage(arr, None, **opts)):
        out[k] = m
        if progress is not None:
            progress(i + 1, shape[0])
        if should_stop is not None and should_stop():
            break
    return out


def damage_scores(stack, **options) -> np.ndarray:
    """Per-slice damage score: the fraction of each slice's pixels that
    :func:`detect_damage` marks damaged (0 = clean, 1 = a missing section)."""
    arr, _ = _as_stack(stack)
    if arr is None:
        return np.array([float(detect_damage(stack, **options).mean())])
    return np.array([float(m.mean()) for _, m in iter_detect_damage(arr, None, **options)])


def damaged_slices(stack, *, min_fraction: float = 0.0, **options) -> list[int]:
    """The slices with detected damage, most damaged first.

    A slice counts when more than ``min_fraction`` of its pixels are detected as damaged.
    Other options as :func:`detect_damage`.
    """
    scores = damage_scores(stack, **options)
    order = np.argsort(-scores, kind="stable")
    return [int(k) for k in order if scores[k] > min_fraction]


# ---------------------------------------------------------------------------- command line
def add_arguments(parser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="image stack, .tif/.tiff or .zarr, axes (z, y, x); never modified")
    parser.add_argument("-o", "--output", required=True, metavar="MASK",
                        help="mask stack to write (.tif/.zarr, uint8, 1 = damaged)")
    parser.add_argument("--report", type=Path, default=None, metavar="CSV",
                        help="per-slice report: z, damaged fraction, regions, flagged")
    parser.add_argument("--overwrite", action="store_true", help="replace MASK if it exists")
    parser.add_argument("--sensitivity", type=float, default=0.5,
                        help="0-1, higher finds more (default 0.5)")
    parser.add_argument("--grow", type=int, default=0, help="grow regions by N pixels")
    parser.add_argument("--rectangles", action="store_true",
                        help="cover each region by its bounding rectangle")
    parser.add_argument("--min-area", type=int, default=100,
                        help="drop regions under N pixels (default 100)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="detector weights (default: bundled)")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from tqdm import tqdm

    from .io import StackWriter, read_stack, read_voxel_size

    stack = read_stack(args.input, name="input")
    _check_options(args.sensitivity, args.grow, args.min_area)
    if args.report is not None and Path(args.report).resolve() == Path(args.input).resolve():
        raise ValueError("--report must not be the input stack.")
    writer = StackWriter(args.output, stack.shape, np.uint8, overwrite=args.overwrite,
                         protect=(args.input,), voxel_size=read_voxel_size(args.input),
                         description="napari-flowinpaint detect: 1 = damaged pixel")
    rows = []
    try:
        with tqdm(total=stack.shape[0], unit="slice", desc="detect", file=sys.stderr,
                  disable=args.no_progress) as bar:
            for z, m in iter_detect_damage(stack, None, sensitivity=args.sensitivity,
                                           grow=args.grow, rectangles=args.rectangles,
                                           min_area=args.min_area, weights=args.weights):
                writer[z] = m.astype(np.uint8)
                regions = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)[0] - 1
                rows.append((z, float(m.mean()), regions, bool(m.any())))
                bar.update(1)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    if args.report is not None:
        with open(args.report, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["z", "damaged_fraction", "regions", "flagged"])
            for z, frac, reg, flag in rows:
                w.writerow([z, f"{frac:.6f}", reg, int(flag)])
    flagged = [r[0] for r in rows if r[3]]
    print(f"{len(flagged)} of {stack.shape[0]} slice(s) show damage"
          + (f": {', '.join(map(str, flagged[:20]))}{' ...' if len(flagged) > 20 else ''}"
             if flagged else "") + f"; wrote {args.output}"
          + (f" and {args.report}" if args.report else ""))
    return 0
