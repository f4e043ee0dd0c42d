"""The detection driver: detection over slices, stacks and stack files, relative to what
is normal for the stack (see the package docstring; what a section is judged from is in
:mod:`.evidence`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator

import cv2
import numpy as np

from ...engine import section_index
from ..fingerprints import ReadRecorder
from .cues import label_regions
from .evidence import section_evidence, stack_reference, weights_key
from .normal import AGREE, NormalMemory, first_agree, spread_order
from .postprocess import check_options, decide_mask, refine_mask
from .stackpass import Sections, judge_section
from .threads import in_order, sections_at_once

__all__ = ["detect_damage", "iter_detect_damage", "damage_scores", "damaged_slices",
           "normal_region_area", "iter_normal_region_area", "known_normal_area",
           "remember_normal_area", "as_section_or_stack", "slice_report"]

#: A region size is normal for a stack when at least this share of its typical sections
#: (and two of them) show a region (:func:`normal_region_area`).
NORMAL_SHARE = 1 / 3
#: A section with more than this fraction found damaged is not typical of its stack.
TYPICAL_MAX_DAMAGE = 0.01
#: The most a stack can raise the smallest reported region, as a fraction of a section.
RELATIVE_MAX_AREA = 0.0025
#: Normal region areas measured before, by array and by the content of the sections read.
NORMAL_AREAS = NormalMemory()


def iter_normal_region_area(stack, *, sensitivity: float = 0.5, min_area: int = 100,
                            weights=None, scale: tuple[float, float] | None = None,
                            level: tuple[float, float] | None = None,
                            sections: int = 9, reads: dict | None = None,
                            ) -> Generator[tuple[int, int], None, int]:
    """:func:`normal_region_area` step by step: yields ``(judged, to judge)`` after each
    section it judges (the second number grows when the first sections cannot tell; when
    the first ones agree it falls to the number judged, yielded once more), and returns the
    area (``StopIteration.value``; ``yield from`` gives it). Stop iterating to cancel (the
    sections being judged then finish on their own threads). ``reads``: a dict that
    receives the digest of every section read (``{str(z): digest}``, for
    :func:`remember_normal_area`)."""
    n = int(stack.shape[0])
    if n < 3:
        return 0
    sections = int(sections)
    picks = sorted(set(np.linspace(1, n - 2, min(n - 2, sections)).round().astype(int)
                       .tolist()))
    more = sorted(set(np.linspace(1, n - 2, min(n - 2, 2 * sections)).round().astype(int)
                      .tolist()) - set(picks))  # between those, when they cannot tell
    if scale is None or level is None:
        scale, level = stack_reference(stack, weights)
    source = stack
    if reads is not None:  # every section read, with its digest
        source = ReadRecorder(stack)
        source.reads = reads
    largest = []
    done = [0, len(picks)]
    order = spread_order(picks)  # each prefix spread through the stack

    def judge(zs):
        if not zs:
            return
        for _, m in iter_detect_damage(source, zs, sensitivity=sensitivity, min_area=min_area,
                                       weights=weights, scale=scale, level=level,
                                       relative=False, fold_margin=False):
            done[0] += 1
            if m.mean() <= TYPICAL_MAX_DAMAGE:
                count, _, area = label_regions(m)
                largest.append(int(area[1:].max()) if count > 1 else 0)
            yield tuple(done)

    def normal() -> bool:
        hits = sum(a > 0 for a in largest)
        return hits >= 2 and hits >= NORMAL_SHARE * len(largest)

    yield from judge(order[:AGREE])
    if len(order) > AGREE and first_agree(largest, AGREE):  # no more needed to tell
        done[1] = done[0]
        yield tuple(done)
        return 0
    yield from judge(order[AGREE:])
    few = len(largest) < (len(picks) + 1) // 2  # most of them damaged
    if more and (few or (any(largest) and not normal())):  # not enough to tell: look again
        done[1] += len(more[:len(picks)])
        yield from judge(more[:len(picks)])
    return max(largest) if normal() else 0


def normal_region_area(stack, *, sensitivity: float = 0.5, min_area: int = 100,
                       weights=None, scale: tuple[float, float] | None = None,
                       level: tuple[float, float] | None = None, sections: int = 9,
                       progress: Callable[[int, int], None] | None = None,
                       reads: dict | None = None) -> int:
    """The size of the regions the detector finds on *this* stack's healthy sections.

    Some stacks show the detector small regions on most healthy sections (on a 60 nm
    serial-section stack, a profile that the next section no longer holds looks like a
    stain). What is normal for the stack is not damage: the detector judges up to
    ``sections`` sections spread through it (:func:`iter_detect_damage` with
    ``relative=False``); those with more than 1 % of their area found damaged are left out
    as damaged. When at least a third of the rest, and at least two, show a region, the
    largest of those regions is returned; otherwise 0 (false alarms are not normal here).
    :func:`iter_detect_damage` then drops regions smaller than twice that size (at most
    0.25 % of a section). When the first sections cannot tell (fewer than half of them
    typical, or some showing a region but too few), up to ``sections`` more, lying between
    them, are judged too: on a stack with many damaged sections, the few typical ones left
    said nothing. The sections are judged in an order spread through the stack
    (:func:`~.normal.spread_order`: the middle, both ends, the quarters...) and when the
    first five agree (none shows a region, or all are found damaged) the rest are not
    judged: 0.

    Parameters
    ----------
    stack : array_like, shape (Z, H, W)
        numpy, dask or zarr; only the judged sections and their neighbours are read.
    sensitivity, min_area, weights, scale, level : keyword-only
        As :func:`iter_detect_damage`.
    sections : int, keyword-only
        How many sections to judge (twice as many at most, in a stack with many damaged
        sections).
    progress : callable(judged, to judge), keyword-only
        Called after each judged section (:func:`iter_normal_region_area` gives the same
        step by step, to cancel between sections).
    reads : dict, keyword-only
        Filled with the digest of every section read (``{str(z): digest}``): give it to
        :func:`remember_normal_area`, so that the same data is not judged again.

    Returns
    -------
    int
        Pixels; 0 when the stack's healthy sections show no region.
    """
    steps = iter_normal_region_area(stack, sensitivity=sensitivity, min_area=min_area,
                                    weights=weights, scale=scale, level=level,
                                    sections=sections, reads=reads)
    while True:
        try:
            done, total = next(steps)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(done, total)


def relative_min_area(min_area: int, normal_area: int, section_pixels: int) -> int:
    """The smallest region reported on a stack whose healthy sections show regions of up to
    ``normal_area`` pixels: twice that, within [``min_area``, 0.25 % of a section]."""
    cap = math.ceil(RELATIVE_MAX_AREA * section_pixels)
    return max(int(min_area), min(2 * int(normal_area), cap))


def _normal_meta(arr, options: dict) -> tuple:
    return (tuple(arr.shape), str(arr.dtype), repr(sorted(options.items())),
            weights_key(options.get("weights")))


def known_normal_area(arr, **options) -> int | None:
    """:func:`normal_region_area` of ``arr`` with these options when it was measured before:
    on ``arr`` itself (while it lives), or on an array holding the same sections wherever
    that measurement read them (a stack opened again, a copy; those sections are read and
    hashed to check), else None."""
    return NORMAL_AREAS.known(arr, _normal_meta(arr, options))


def remember_normal_area(arr, value: int, *, reads: dict | None = None, **options) -> None:
    """Keep :func:`normal_region_area` of ``arr`` for later calls while ``arr`` lives (a
    napari layer judged slice by slice pays for it once) and, with ``reads`` (the digests
    :func:`normal_region_area` filled in), for any array holding the same sections (up to
    16 stacks are remembered)."""
    NORMAL_AREAS.remember(arr, _normal_meta(arr, options), value, reads)


def _normal_area_of(arr, **options) -> int:
    """:func:`normal_region_area` of ``arr``, measured once for its data."""
    value = known_normal_area(arr, **options)
    if value is None:
        reads: dict = {}
        value = normal_region_area(arr, reads=reads, **options)
        remember_normal_area(arr, value, reads=reads, **options)
    return value


def as_section_or_stack(stack):
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


def iter_detect_damage(stack, zs=None, *, sensitivity: float = 0.5, grow: int = 0,
                       rectangles: bool = False, min_area: int = 100, weights=None,
                       scale: tuple[float, float] | None = None,
                       level: tuple[float, float] | None = None, relative: bool = True,
                       normal_area: int | None = None, fold_margin: bool = True,
                       thin_folds: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """Detect damage slice by slice, yielding ``(z, mask)`` as each slice is done.

    Stop iterating to cancel: what was yielded is kept. ``zs`` lists the slices (default
    all); ``scale`` is the stack's grey scale (default :func:`stack_scale` of ``stack``; give
    it when judging a stack in several calls, so that they need not compute it again), and
    ``level`` likewise its typical level (:func:`~.cues.stack_level`). With detector weights
    trained on levelled input (:data:`~.evidence.LEVELLED`), the neighbours are matched to each
    section and all three brought to that level before it is judged
    (:func:`~.cues.match_neighbour`, :func:`~.cues.level_section`): brightness and
    contrast flicker between sections is not damage. ``relative`` and ``normal_area``:
    see :func:`detect_damage` (``normal_area`` is measured once when not given; give it,
    from :func:`normal_region_area`, when judging a stack in several calls). See
    :func:`detect_damage` for the other parameters (``fold_margin``, ``thin_folds`` too).
    Sections are judged two at a time (:func:`~.threads.sections_at_once`: the same masks,
    sooner on two cores): when iteration stops, the ones being judged finish on their own
    threads.
    """
    sensitivity = check_options(sensitivity, grow, min_area)
    arr, shape = as_section_or_stack(stack)
    if arr is None:
        raise ValueError("iter_detect_damage needs a stack (Z, H, W); for one section use "
                         "detect_damage.")
    n = shape[0]
    zs = list(range(n)) if zs is None else [section_index(z) for z in zs]
    for z in zs:
        if not -n <= z < n:
            raise IndexError(f"slice {z} is outside the stack of {n} sections (0..{n - 1}).")
    zs = [z % n for z in zs]
    if scale is None or level is None:
        scale, level = stack_reference(arr, weights)
    scale, level = tuple(scale), tuple(level)
    threshold = 1.0 - sensitivity
    if relative and normal_area is None:
        normal_area = _normal_area_of(arr, sensitivity=sensitivity, min_area=min_area,
                                      weights=weights, scale=scale, level=level)
    unit = np.dtype(getattr(arr, "dtype", np.float32)).kind == "f"
    raw_scale = scale
    if unit:  # float data is judged in the units of its own scale: scale-free
        lo, hi = scale
        scale, level = (0.0, 1.0), ((level[0] - lo) / (hi - lo), level[1] / (hi - lo))
    if relative and normal_area:
        min_area = relative_min_area(min_area, normal_area, shape[1] * shape[2])
    sections = Sections(arr, scale, raw_scale if unit else None)
    cues: dict = {}  # half-resolution channels of the sections (weights not levelled)

    def judge(z: int, before: int | None, after: int | None) -> np.ndarray:
        p, bright, alone, blank, *folds = section_evidence(
            *(None if k is None else sections.get(k)[0] for k in (before, z, after)),
            scale=scale, level=level, weights=weights, cache=cues, thin_folds=thin_folds)
        return decide_mask(p, bright, threshold=threshold, alone=alone, blank=blank,
                           folds=folds[0] if folds else None)

    def one(z: int) -> np.ndarray:
        return refine_mask(judge_section(sections, z, judge), grow=grow,
                           rectangles=rectangles, min_area=min_area,
                           section=sections.get(z)[0] if fold_margin else None)

    masks = in_order(one, zs, at_once=sections_at_once(len(zs), shape[1] * shape[2]))
    try:
        for z, mask in zip(zs, masks, strict=True):
            yield z, mask
            live = sections.forget_below(z - 4)  # drop the rest, hole-filled copies too
            for key in [key for key in list(cues) if key not in live]:
                cues.pop(key, None)
    finally:
        masks.close()


def detect_damage(stack, z: int | None = None, *, sensitivity: float = 0.5, grow: int = 0,
                  rectangles: bool = False, min_area: int = 100, weights=None,
                  relative: bool = True, normal_area: int | None = None,
                  fold_margin: bool = True, thin_folds: bool = True,
                  progress: Callable[[int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Propose a damage mask for one section, one slice of a stack, or a whole stack.

    Parameters
    ----------
    stack : array_like, shape (H, W) or (Z, H, W)
        A single section (judged on its own) or a stack of sections, uint8, uint16, float32
        or float64 (numpy, dask or zarr: slices are read one at a time). Not modified.
        Float data is judged in the units of its own grey scale: the stack times any
        factor, plus any offset, gets the same mask. It must be finite.
    z : int or None
        The slice to judge, with its neighbours ``z - 1`` and ``z + 1`` (the next ones out
        when those are blank); None judges every slice.
    sensitivity : float in [0, 1], keyword-only
        Higher finds fainter damage and raises more false alarms: a pixel is damaged when
        the network's probability exceeds ``1 - sensitivity``. 0.5 is the tuned default.
    grow : int, keyword-only
        Grow each detected region by this many pixels (a safety margin for the repair).
    fold_margin : bool, keyword-only
        Grow each fold-like region (long, thin and darker than around it) over its dark
        edges (up to a quarter of its width) and by 1 px more, before ``grow``, so that a
        repair leaves no dark slivers along it (:func:`~.folds.grow_folds`; default True).
    thin_folds : bool, keyword-only
        Also look for thin folds at full resolution: long, thin, nearly straight dark bands
        that neither neighbour shows (:func:`~.thinfolds.thin_folds`; default True). The
        network, judging at half resolution, misses most folds under about 30 px wide.
    rectangles : bool, keyword-only
        Cover each region by its bounding rectangle.
    min_area : int, keyword-only
        Drop regions of fewer pixels (default 100).
    weights : path, optional, keyword-only
        Detector weights (default: the bundled ``detector-cpu.safetensors``).
    relative : bool, keyword-only
        Judge relative to what is normal for this stack (default): when most of its healthy
        sections show the detector small regions, regions up to twice their size (at most
        0.25 % of a section) are not reported (:func:`normal_region_area`). False: only
        ``min_area`` applies. No effect on a single section.
    normal_area : int, optional, keyword-only
        The stack's :func:`normal_region_area`, when already known (it costs judging up to
        9 sections; a stack that stays alive is measured once).
    progress : callable(done, total), keyword-only
        Called after each slice when ``z`` is None.
    should_stop : callable() -> bool, keyword-only
        Polled between slices when ``z`` is None; when it returns True, the slices judged so
        far are kept and the others are left empty (False).

    Returns
    -------
    mask : ndarray of bool, shape (H, W) or (Z, H, W)
        True marks the damaged pixels found.

    Raises
    ------
    ValueError
        For a stack that is not (H, W) or (Z, H, W), bad options, or a section read that
        holds NaN or infinite values (the message names it).

    Examples
    --------
    >>> mask = detect_damage(stack, 12, grow=4)          # doctest: +SKIP
    >>> worst = damaged_slices(stack)[:5]                # doctest: +SKIP
    """
    arr, shape = as_section_or_stack(stack)
    opts = dict(sensitivity=sensitivity, grow=grow, rectangles=rectangles, min_area=min_area,
                weights=weights, relative=relative, normal_area=normal_area,
                fold_margin=fold_margin, thin_folds=thin_folds)
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
    arr, _ = as_section_or_stack(stack)
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


def slice_report(mask) -> dict:
    """One row of the per-slice detection report: ``damaged_fraction``, ``regions`` (8-
    connected) and ``flagged`` (any damaged pixel)."""
    mask = np.asarray(mask, bool)
    regions = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1
    return {"damaged_fraction": float(mask.mean()), "regions": int(regions),
            "flagged": bool(mask.any())}
