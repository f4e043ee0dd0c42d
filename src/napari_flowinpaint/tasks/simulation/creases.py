"""Thin, curved, sometimes branching folds ("creases"), with the tissue beside them pulled in.

A section that folds over itself shows, along the fold, two layers of tissue (dark: twice
the stain), and beside it tissue pulled toward the fold: what went into the fold is missing
from the flat part. Near the fold the flat tissue is stretched on one side and compressed on
the other, so the fold is edged by a lighter and a darker rim. Real folds are often thin (a
few pixels on overview images at 50-100 nm per pixel, 10-30 px at 4-10 nm per pixel), curved
and may branch; :func:`crease` draws them so, the straight ``"fold"`` band of
:func:`~napari_flowinpaint.tasks.simulation.simulate_damage` being the wide, straight case.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["continuing_line", "crease"]


def _centre_line(shape, rng, *, start=None, angle=None, length=None, bend: float = 0.06):
    """Points (N, 2; x, y) of a smooth curve, its unit normals (N, 2) and its arc position
    in [0, 1] (N,). Without ``start`` the curve crosses the whole image through a random
    point of its middle half; ``bend``: amplitude of the lateral wander (share of the side)."""
    h, w = shape
    s = min(h, w)
    if angle is None:
        angle = rng.uniform(0, np.pi)
    if start is None:
        cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
        half = np.hypot(h, w)
        t = np.linspace(-half, half, max(64, int(2 * half / 4)))
    else:
        cx, cy = start
        t = np.linspace(0.0, length, max(16, int(length / 4)))
    d = np.array([np.cos(angle), np.sin(angle)])
    n = np.array([-np.sin(angle), np.cos(angle)])
    offset = np.zeros_like(t)
    for _ in range(3):  # a few smooth waves of different lengths
        period = s * rng.uniform(0.3, 1.5)
        offset += s * rng.uniform(0, bend) * np.sin(2 * np.pi * t / period
                                                   + rng.uniform(0, 2 * np.pi))
    if start is not None:
        offset -= offset[0]  # a branch leaves from its start point
    pts = np.stack([cx + t * d[0] + offset * n[0], cy + t * d[1] + offset * n[1]], 1)
    tangent = np.gradient(pts, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-6)
    normals = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    arc = (t - t[0]) / max(t[-1] - t[0], 1e-6)
    return pts, normals, arc


def _draw(canvas, pts, widths) -> None:
    """Draw the polyline ``pts`` into ``canvas`` (uint8), each segment ``widths`` thick."""
    for (x0, y0), (x1, y1), wd in zip(pts[:-1], pts[1:], widths[:-1], strict=True):
        if wd < 0.5:
            continue
        cv2.line(canvas, (int(round(x0 * 16)), int(round(y0 * 16))),
                 (int(round(x1 * 16)), int(round(y1 * 16))), 1,
                 thickness=max(1, int(round(wd))), lineType=cv2.LINE_8, shift=4)


def crease(f: np.ndarray, rng: np.random.Generator, black: float,
           white: float) -> tuple[np.ndarray, np.ndarray]:
    """A thin curved fold across ``f`` (float32, grey levels between ``black`` and
    ``white``): the damaged image (float32) and the fold's mask (bool).

    The fold is 2.5-24 px wide (log-uniform; scaled down on crops under 256 px), crosses
    the image along a smoothly bending line, its width varying by up to 40 % along it, and
    with probability 0.4 has a branch that tapers to nothing. Along the fold two layers of
    tissue overlap and are darkened to 30-60 % of their grey level above ``black``. The
    tissue beside the main line is pulled toward it by the fold's width in all (shared out
    between the two sides at random), more so near it (stretched), and one rim is darkened
    and the other lightened by up to 20 % over about twice the fold's width. The mask is
    the fold itself (the two layers); the pulled-in tissue beside it is left to the
    detector's fold margin.
    """
    h, w = f.shape
    s = min(h, w)
    width = float(np.exp(rng.uniform(np.log(2.5), np.log(24.0)))) * min(1.0, s / 256)
    width = max(width, 2.0)
    pts, normals, arc = _centre_line(f.shape, rng)
    vary = 1 + 0.4 * np.sin(2 * np.pi * arc * rng.uniform(1, 4) + rng.uniform(0, 2 * np.pi))
    band = np.zeros(f.shape, np.uint8)
    _draw(band, pts, width * vary)
    if rng.random() < 0.4:  # a branch leaving the main fold, tapering to nothing
        i = int(rng.integers(len(pts) // 4, 3 * len(pts) // 4))
        turn = rng.uniform(np.radians(20), np.radians(60)) * rng.choice([-1, 1])
        base = np.arctan2(pts[min(i + 1, len(pts) - 1), 1] - pts[i, 1],
                          pts[min(i + 1, len(pts) - 1), 0] - pts[i, 0])
        bpts, _, barc = _centre_line(f.shape, rng, start=tuple(pts[i]), angle=base + turn,
                                     length=s * rng.uniform(0.15, 0.5), bend=0.03)
        _draw(band, bpts, width * rng.uniform(0.5, 1.0) * (1 - barc))
    mask = band.astype(bool)

    # nearest point of the main line for every pixel: its normal and the distance to it
    line = np.full(f.shape, 255, np.uint8)
    nx, ny = np.zeros(f.shape, np.float32), np.zeros(f.shape, np.float32)
    for (x0, y0), (x1, y1), (a, b) in zip(pts[:-1], pts[1:], normals[:-1], strict=True):
        p0 = (int(round(x0)), int(round(y0)))
        p1 = (int(round(x1)), int(round(y1)))
        cv2.line(line, p0, p1, 0)
        cv2.line(nx, p0, p1, float(a))
        cv2.line(ny, p0, p1, float(b))
    dist, labels = cv2.distanceTransformWithLabels(line, cv2.DIST_L2, 5,
                                                   labelType=cv2.DIST_LABEL_PIXEL)
    zy, zx = np.nonzero(line == 0)  # label k is the k-th zero pixel in row-major order
    order = np.zeros(int(labels.max()) + 1, np.int64)
    order[labels[zy, zx]] = np.arange(len(zy))
    k = order[labels]
    qy, qx = zy[k].astype(np.float32), zx[k].astype(np.float32)
    mx, my = nx[zy[k], zx[k]], ny[zy[k], zx[k]]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    side = np.sign((xx - qx) * mx + (yy - qy) * my)
    share = rng.uniform(0.2, 0.8)  # of the folded width, taken from the + side
    near = np.exp(-dist / (2.0 * width))
    pull = width * np.where(side > 0, share, 1 - share) * (1 + rng.uniform(0, 0.6) * near)
    moved = cv2.remap(f, (xx + side * mx * pull).astype(np.float32),
                      (yy + side * my * pull).astype(np.float32), cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REFLECT)
    rim = rng.uniform(0.05, 0.2) * near * side * rng.choice([-1, 1])  # + lighter, - darker
    out = np.where(rim > 0, moved + (white - moved) * rim, moved * (1 + rim)
                   + black * -rim).astype(np.float32)
    under = cv2.remap(f, (xx + mx * width).astype(np.float32),
                      (yy + my * width).astype(np.float32), cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REFLECT)
    layers = 0.5 * (f + under)
    dark = rng.uniform(0.3, 0.6)
    out = np.where(mask, black + (layers - black) * dark, out)
    return out.astype(np.float32), mask


def continuing_line(section: np.ndarray, neighbour: np.ndarray, rng: np.random.Generator,
                    black: float, white: float) -> tuple[np.ndarray, np.ndarray]:
    """A thin dark curved line drawn in ``section`` and, a little moved, in ``neighbour``
    (float32 both): tissue such as a myelin sheath or a membrane seen edge-on runs through
    both sections, where a fold lies on one only. A negative example for the detector.

    The line is 2-16 px wide, darkened by 20-60 % (in the neighbour 0.7-1.3 times as much),
    curved like a :func:`crease`, and in the neighbour moved by up to 2 % of the side and
    its width changed by up to 30 %.
    """
    s = min(section.shape)
    width = float(np.exp(rng.uniform(np.log(2.0), np.log(16.0)))) * min(1.0, s / 256)
    pts, _, _ = _centre_line(section.shape, rng, bend=0.04)
    depth = rng.uniform(0.2, 0.6)
    shift = rng.uniform(-0.02, 0.02, 2) * s
    out = []
    for img, p, wd, d in ((section, pts, width, depth),
                          (neighbour, pts + shift, width * rng.uniform(0.7, 1.3),
                           depth * rng.uniform(0.7, 1.3))):
        band = np.zeros(img.shape, np.uint8)
        _draw(band, p, np.full(len(p), max(wd, 1.5)))
        soft = cv2.GaussianBlur(band.astype(np.float32), (0, 0), 0.7)
        out.append((black + (img - black) * (1 - min(d, 0.9) * soft)).astype(np.float32))
    return out[0], out[1]
