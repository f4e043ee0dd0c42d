"""Where the engine works: boxes around the damage (one per cluster) and the overlapping tiles
the learned stages run on, with the linear ramps that blend them."""

from __future__ import annotations

import cv2
import numpy as np
import torch

__all__ = ["blend_ramp", "damage_box", "damage_boxes", "fitted_spans", "plan_tiles", "tiles_area"]


def damage_box(mask: np.ndarray, margin: int, min_size: int = 64):
    """Bounding box ``(y0, y1, x0, x1)`` of the True pixels of ``mask`` grown by ``margin``
    on each side and to at least ``min_size`` pixels per axis, clipped to the image."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    box = []
    for idx, n in ((ys, mask.shape[0]), (xs, mask.shape[1])):
        lo, hi = int(idx[0]) - margin, int(idx[-1]) + 1 + margin
        if hi - lo < min_size:
            grow = min_size - (hi - lo)
            lo -= grow // 2
            hi += grow - grow // 2
        if lo < 0:
            hi, lo = hi - lo, 0
        if hi > n:
            lo, hi = max(0, lo - (hi - n)), n
        box += [lo, hi]
    return tuple(box)


def damage_boxes(mask: np.ndarray, margin: int, min_size: int = 64,
                 max_boxes: int = 32) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Boxes to repair ``mask`` region by region: one per cluster of damage.

    Damaged regions closer than about ``2 * margin`` pixels share a cluster; each cluster
    gets its :func:`damage_box`. When the boxes would cover at least 70 % of the single box
    around all the damage (or there are more than ``max_boxes``), that one box is returned
    instead: scattered small damage then costs what its area costs, not what its spread does.

    Returns
    -------
    list of (box, own)
        ``box`` is ``(y0, y1, x0, x1)``; ``own`` (bool, the box's shape) marks the damaged
        pixels that box repairs (a box may also hold, in its margin, damage of another
        cluster: the networks see it as damaged, the other box repairs it).
    """
    whole = damage_box(mask, margin, min_size)
    y0, y1, x0, x1 = whole
    single = [(whole, mask[y0:y1, x0:x1])]
    if margin <= 0:
        return single
    sub = np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.uint8)
    grown = cv2.dilate(sub, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    n, labels = cv2.connectedComponents(grown, connectivity=8)
    if n <= 2 or n - 1 > max_boxes:
        return single
    out = []
    for i in range(1, n):
        region = np.zeros(mask.shape, bool)
        region[y0:y1, x0:x1] = (labels == i) & (sub > 0)
        if region.any():
            b = damage_box(region, margin, min_size)
            out.append((b, region[b[0]:b[1], b[2]:b[3]]))
    area = sum((b[1] - b[0]) * (b[3] - b[2]) for b, _ in out)
    if area >= 0.7 * (y1 - y0) * (x1 - x0):
        return single
    return out


def tiles_area(tiles) -> int:
    return sum((y1 - y0) * (x1 - x0) for (y0, y1), (x0, x1) in tiles)


def blend_ramp(n: int, rise: bool, fall: bool, overlap: int) -> torch.Tensor:
    """1-D blending weights: linear ramps over ``overlap`` pixels at shared tile edges."""
    r = torch.ones(n)
    k = min(overlap, n // 2)
    edge = (torch.arange(k, dtype=torch.float32) + 0.5) / k
    if rise:
        r[:k] = edge
    if fall:
        r[n - k:] = edge.flip(0)
    return r


#: what one more tile costs, in pixels of network work: a tile goes through ~40 operations
#: whose fixed cost (a wake-up of the threads, small layers) is about that of 20,000 pixels
#: (measured at 1024^2: 20 tiles of 256 px took 0.93 s, 4 of 576 px with the same area 0.76 s)
TILE_COST = 20_000


def fitted_spans(n: int, size: int, overlap: int, multiple: int = 16) -> list[tuple[int, int]]:
    """Start/stop of the fewest windows of at most ``size`` (overlapping by at least
    ``overlap``) covering ``range(n)``, all of the smallest side, a multiple of ``multiple``,
    that covers it: 1024 px take two windows of 544 px, not three of 512 px."""
    if n <= size:
        return [(0, n)]
    count = -(-(n - overlap) // (size - overlap))
    side = -(-(n + (count - 1) * overlap) // count)
    side = min(n, -(-side // multiple) * multiple)
    step = (n - side) / (count - 1)
    return [(round(i * step), round(i * step) + side) for i in range(count)]


def plan_tiles(mask: np.ndarray, size: int) -> tuple[list, int]:
    """The tiles the learned stages run on for ``mask`` (the damage of one box) and their
    overlap (``size // 16`` pixels, blended by :func:`blend_ramp`).

    Tiles are at most ``size`` pixels a side, fitted to the box (:func:`fitted_spans`), and
    only those holding damage are kept. Where damage is scattered, tiles of half the side
    (at least 256 px) may do with less work: of the two tilings the one with the fewer
    pixels, each tile counted :data:`TILE_COST` pixels more, is taken.

    Returns
    -------
    tiles : list of ((y0, y1), (x0, x1))
    overlap : int
    """
    h, w = mask.shape
    overlap = max(2, size // 16)
    best = None
    for side in (size, size // 2) if size // 2 >= 256 else (size,):
        tiles = [((y0, y1), (x0, x1)) for y0, y1 in fitted_spans(h, side, overlap)
                 for x0, x1 in fitted_spans(w, side, overlap) if mask[y0:y1, x0:x1].any()]
        cost = tiles_area(tiles) + TILE_COST * len(tiles)
        if best is None or cost < best[0]:
            best = (cost, tiles)
    return best[1], overlap
