"""From the detector's probability map to a damage mask: hysteresis, snapping to bright
blank pixels, small-region removal, rectangles and a safety margin.

Mask convention of the package: ``True`` marks a *damaged* pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

from .cues import label_regions, select_regions
from .folds import grow_folds

__all__ = ["decide_mask", "refine_mask", "check_options", "keep_confirmed", "odd_neighbour"]


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
    return mask | select_regions(labels, touch, extra)


def decide_mask(p, bright, *, threshold: float = 0.5, alone: bool = False,
                seed_threshold: float = 0.95, snap_bright: bool = True,
                snap_fraction: float = 0.35, snap_margin: int = 6,
                bright_seed: float = 0.7, blank=None, blank_share: float = 0.5,
                folds=None) -> np.ndarray:
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
    blank : ndarray of bool, shape (H, W), optional, keyword-only
        The section's pixels without tissue texture (:func:`~.cues.blank_pixels`: flat or
        white). Given, a largely bright region kept without a sure pixel must also be blank
        for at least ``blank_share`` of its area: a film hole or crack is white or flat,
        bright cytoplasm (grey 210-220 of 255 on ssTEM, 8-14 % of it saturated) keeps its
        texture. Not applied to a section without neighbours.
    blank_share : float, keyword-only
    folds : ndarray of bool, shape (H, W), optional, keyword-only
        Thin folds found at full resolution (:func:`~.thinfolds.thin_folds`): added to the
        mask as they are (the network barely sees folds under about 30 px wide).

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    cand = p > threshold
    cand = (cand | bright) if alone else _extend(cand, bright)
    if not cand.any():
        return cand if folds is None else cand | np.asarray(folds, bool)
    n, labels, area = label_regions(cand)
    bright_frac = _count_in(labels, n, bright) / np.maximum(area, 1)
    keep = np.ones(n, bool)
    if seed_threshold > 0:
        sure = _count_in(labels, n, p >= seed_threshold) > 0  # regions holding a sure pixel
        bright_ok = bright_frac >= 0.3
        if not alone:  # alone, the network knows less: every bright region counts
            bright_ok &= _count_in(labels, n, p >= bright_seed) > 0
            if blank is not None:  # no tissue texture: white or flat
                bright_ok &= _count_in(labels, n, blank) >= blank_share * area
        keep = sure | bright_ok
    keep[0] = False
    out = select_regions(labels, keep, cand)
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
            region = select_regions(labels, snap, cand)
            grown = cv2.dilate((bright & region).astype(np.uint8), np.ones((3, 3), np.uint8))
            out = (out & ~region) | (grown.astype(bool) & region)
    return out if folds is None else out | np.asarray(folds, bool)


def odd_neighbour(far: np.ndarray, near: np.ndarray, section: np.ndarray, labels: np.ndarray,
                  *, margin: float = 1.25) -> np.ndarray:
    """Per region of ``labels`` (an 8-connected label image, 0 = background), whether the
    neighbour ``near`` is the odd one of ``far`` (the section beyond it), ``near`` and
    ``section`` there: damaged there itself, so that its evidence about the section is not
    to be trusted.

    Each section is standardised over its whole area (flicker between sections is not a
    difference) and compared over the region's pixels: ``near`` is odd when its mean
    absolute difference to the other two exceeds, by ``margin``, that of each of them to
    theirs. Damage of the section itself makes the section the odd one, never ``near``."""
    inside = np.flatnonzero(labels)  # only the regions' pixels are compared
    flat = labels.ravel()[inside]
    n = int(flat.max(initial=0)) + 1
    a, b, c = (_standard(np.asarray(x, np.float32), inside) for x in (far, near, section))

    def per_label(u, v):
        return np.bincount(flat, weights=np.abs(u - v), minlength=n)

    ab, bc, ac = per_label(a, b), per_label(b, c), per_label(a, c)
    odd = ab + bc >= margin * np.maximum(ab + ac, bc + ac)
    odd[0] = False
    return odd


def _standard(x: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``x`` standardised over its whole area, at the flat indices ``at``."""
    return (x.ravel()[at] - x.mean()) / max(float(x.std()), 1e-6)


def keep_confirmed(labels: np.ndarray, doubts: dict, *, where=None) -> np.ndarray:
    """The damage mask from the regions ``labels``: ``doubts`` maps each neighbour judged
    odd around some regions to ``(odd, opinion)``, the regions where it is odd (bool per
    label) and the section's mask judged again with that neighbour replaced by the section
    beyond it. A region where a neighbour is odd is kept only when that opinion also finds
    it, at least in part. ``where``: the regions' pixels (``labels > 0``), when known.

    Damage of the section is there whichever neighbours it is judged against; a region found
    only against a neighbour damaged there itself is that neighbour's doing (e.g. tissue
    displaced beside a fold in the neighbour, which the section's healthy tissue then seems
    not to continue).
    """
    n = int(labels.max()) + 1
    keep = np.ones(n, bool)
    for odd, opinion in doubts.values():
        seen = _count_in(labels, n, np.asarray(opinion, dtype=bool)) > 0
        keep &= ~odd[:n] | seen
    keep[0] = False
    return select_regions(labels, keep, where)


def _drop_small(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    if min_pixels <= 1 or not mask.any():
        return mask
    _, labels, area = label_regions(mask)
    keep = area >= min_pixels
    keep[0] = False
    return select_regions(labels, keep, mask)


def refine_mask(mask, *, grow: int = 0, rectangles: bool = False,
                min_area: int = 0, section=None) -> np.ndarray:
    """Post-process a damage mask: drop small regions, give folds a margin, cover regions by
    rectangles, grow.

    Parameters
    ----------
    mask : array_like of bool, shape (H, W)
        True marks damaged pixels. Not modified.
    min_area : int, keyword-only
        First, drop regions (8-connected) of fewer pixels than this.
    section : array_like, shape (H, W), optional, keyword-only
        The section the mask was found on. Given, every fold-like region (long, thin and
        darker than around it) is then grown over its dark edges, up to a share of its
        width, and by a pixel more (:func:`~.folds.grow_folds`): the band the detector
        draws tends to stop short of the fold's edges.
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
    check_options(0.5, grow, min_area)
    out = _drop_small(out, int(min_area)) if min_area > 1 else out.copy()
    if section is not None and out.any():
        out = grow_folds(out, section)
    if rectangles and out.any():
        _, _, stats, _ = cv2.connectedComponentsWithStats(out.astype(np.uint8), connectivity=8)
        for x, y, w, h, _a in stats[1:]:
            out[y:y + h, x:x + w] = True
    if grow > 0 and out.any():
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        out = cv2.dilate(out.astype(np.uint8), k).astype(bool)
    return out


def check_options(sensitivity, grow, min_area) -> float:
    sensitivity = float(sensitivity)
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError(f"sensitivity must lie in [0, 1] (higher finds more), got {sensitivity}.")
    if int(grow) != grow or int(min_area) != min_area or grow < 0 or min_area < 0:
        raise ValueError(f"grow and min_area must be whole numbers >= 0, got grow={grow!r}, "
                         f"min_area={min_area!r}.")
    return sensitivity
