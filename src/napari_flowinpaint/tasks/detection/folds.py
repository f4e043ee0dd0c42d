"""A margin around folds: the detected region of a fold grown over the fold's dark edges.

A fold is a long, thin band darker than the tissue around it (two layers of the section lie
on each other). The detector draws it from a half-resolution probability map and its mask
tends to stop short of the band's edges: a repair of that mask leaves thin dark slivers
along both sides. :func:`grow_folds` finds the fold-like regions of a mask
(:func:`fold_regions`) and grows each over the pixels next to it that are still darker than
half-way between the band and the tissue around it (where at least half of the fold's
darkening is reached, as :func:`~napari_flowinpaint.tasks.simulation.simulate_damage` draws
the mask of soft-edged damage), up to :data:`FOLD_REACH` of the fold's width away, then by
:data:`MIN_MARGIN` pixels more for the soft rest of the edge. Other regions are left as they
are. The width is measured in the pixels of the section itself, so the reach follows the
pixel size: a fold of the same physical width imaged at half the pixel size is twice as
wide in pixels and may grow twice as far.

Mask convention of the package: ``True`` marks a *damaged* pixel.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

__all__ = ["FOLD_REACH", "MIN_MARGIN", "MAX_REACH", "MAX_RING", "MIN_ELONGATION", "fold_regions",
           "fold_reach", "grow_folds"]

#: How far a fold may grow over its dark edges, as a share of its width (see
#: docs/detection.md, "Folds", for what this was measured on).
FOLD_REACH = 0.25
#: The margin every fold gets beyond its dark edges (pixels), and the most it may grow over
#: them (pixels).
MIN_MARGIN, MAX_REACH = 1, 24
#: A region is long and thin when its area is at least this many times its width squared
#: (its length over its width; a disk scores 1.8, a 2:1 ellipse 3.5).
MIN_ELONGATION = 6.0
#: The ring of tissue a fold's grey level is compared with is as wide as the fold, but at
#: most this many pixels (a wide region's ring would take a dilation by hundreds of pixels:
#: minutes on a 2048^2 section; the tissue's median over 48 px is as good).
MAX_RING = 2 * MAX_REACH


def fold_reach(width: float) -> int:
    """How far (pixels) a fold ``width`` pixels wide may grow over its dark edges:
    :data:`FOLD_REACH` of its width, within [:data:`MIN_MARGIN`, :data:`MAX_REACH`]."""
    return int(np.clip(round(FOLD_REACH * width), MIN_MARGIN, MAX_REACH))


def _within(region: np.ndarray, r: int) -> np.ndarray:
    """The pixels within ``r`` pixels of ``region`` (a disk-shaped dilation; by the distance
    to it beyond 8 px, where a dilation by a large disk costs far more)."""
    if r <= 8:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        return cv2.dilate(region.astype(np.uint8), kernel).astype(bool)
    away = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2,
                                 cv2.DIST_MASK_PRECISE)
    return away <= r


def _folds(mask: np.ndarray, section: np.ndarray, pad_by) -> Iterator[tuple]:
    """``(box, region, width, band, tissue)`` for each fold-like region of ``mask``: the
    crop ``box`` (row and column slices) around it, padded by ``pad_by(width)`` pixels, the
    region in that crop, its width, and the median grey level of the band and of the tissue
    around it (a ring as wide as the band, outside every region of the mask), in ``section``
    smoothed (Gaussian, sigma 1)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                           connectivity=8)
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n)
    # 4 x the mean distance to the border: exact for a band of constant width (its distances
    # are spread evenly from 0 to half the width); a ragged border does not lengthen it
    width = 4.0 * np.bincount(flat, weights=dist.ravel(), minlength=n) / np.maximum(area, 1)
    long_thin = area >= MIN_ELONGATION * width ** 2
    long_thin[0] = False
    for k in np.flatnonzero(long_thin):
        x0, y0, w, h = (int(v) for v in stats[k, :4])
        ring_width = min(int(np.ceil(width[k])), MAX_RING)
        pad = max(ring_width, int(pad_by(width[k]))) + 2
        box = (slice(max(y0 - pad, 0), min(y0 + h + pad, mask.shape[0])),
               slice(max(x0 - pad, 0), min(x0 + w + pad, mask.shape[1])))
        region = labels[box] == k
        ring = _within(region, ring_width) & ~mask[box]
        if ring.sum() < 16:
            continue
        local = cv2.GaussianBlur(np.asarray(section[box], np.float32), (0, 0), 1.0)
        band, tissue = float(np.median(local[region])), float(np.median(local[ring]))
        if band <= np.percentile(local[ring], 25):  # darker than around it: a fold
            yield box, region, float(width[k]), band, tissue, local


def fold_regions(mask, section) -> list[tuple[np.ndarray, float]]:
    """The fold-like regions of ``mask`` in ``section``: long and thin (area at least
    :data:`MIN_ELONGATION` times the width squared; the width is 4 times the mean distance
    of the region's pixels to its border) and darker than around them (their median grey
    level at most the 25th percentile of a ring as wide as they are, at most
    :data:`MAX_RING` pixels, outside every region).

    Parameters
    ----------
    mask : array_like of bool, shape (H, W)
        Detected damage (True = damaged).
    section : array_like, shape (H, W)
        The section the mask was found on (any dtype; only compared with itself).

    Returns
    -------
    list of (ndarray of bool, float)
        Each fold-like region (a full-size mask) and its width in pixels.
    """
    mask = np.asarray(mask, bool)
    found = []
    for box, region, width, *_ in _folds(mask, np.asarray(section), lambda w: 0):
        full = np.zeros(mask.shape, bool)
        full[box] = region
        found.append((full, width))
    return found


def grow_folds(mask, section) -> np.ndarray:
    """``mask`` with every fold-like region (:func:`fold_regions`) grown over its dark edges
    and by a margin (see the module description); other regions are kept as they are.

    Parameters
    ----------
    mask : array_like of bool, shape (H, W)
        Detected damage (True = damaged). Not modified.
    section : array_like, shape (H, W)
        The section the mask was found on.

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    out = np.array(mask, bool)
    if not out.any():
        return out
    section = np.asarray(section)
    margin = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MIN_MARGIN + 1,) * 2)
    for box, region, width, band, tissue, local in _folds(
            out.copy(), section, lambda w: fold_reach(w) + MIN_MARGIN):
        reach = fold_reach(width)
        near = _within(region, reach)
        edges = region | (near & (local <= 0.5 * (band + tissue)))  # half-way darkened
        n, labels = cv2.connectedComponents(edges.astype(np.uint8), connectivity=8)
        touching = np.zeros(n, bool)
        touching[np.unique(labels[region])] = True
        touching[0] = False
        grown = cv2.dilate(touching[labels].astype(np.uint8), margin).astype(bool)
        out[box] |= grown
    return out
