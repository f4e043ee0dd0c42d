"""A full-resolution stage for thin folds: long, thin dark bands that the section holds and
its neighbours do not.

The detector network judges a section at half resolution and barely responds to folds
under about 30 px wide (on 1024 px sections their recall was 0.12-0.14). A fold is two
layers of the section lying on each other: darker than the tissue there in the sections
before and after it, which do not fold with it. Membranes and myelin sheaths are dark too,
but they continue into the neighbours, a few pixels away at most. :func:`thin_folds`
therefore looks for

1. *new darkness*: where the section is darker, by at least :data:`MIN_DARKER`, than the
   darkest pixel within :data:`NEAR` pixels in either neighbour (a grey erosion of the
   darker of the two, all three lightly smoothed);
2. that is *ridge-like*: a dark ridge of that new darkness (a Hessian eigenvalue test at
   sigma 1.5, 3 and 6 px, scale-normalised), so that a wide dark patch is left to the
   network;
3. and *long, thin and nearly straight*: pieces within :data:`BRIDGE` pixels of each other
   grouped, each group at least :data:`MIN_LENGTH` of the section's side long (and at
   least 150 px, or 60 % of the side on small sections), at most :data:`MAX_WIDTH` px thick
   on average, and no wider across than :data:`STRAIGHT` of its length (the arc of a
   displaced myelin sheath bends; folds run across the section).

What it finds is added to the network's mask by :func:`~.postprocess.decide_mask`;
:func:`~.folds.grow_folds` then gives it the fold margin. Without neighbours nothing is
found (new darkness needs them). About 40 ms per 1024^2 section.

Mask convention of the package: ``True`` marks a *damaged* pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["thin_folds", "dark_ridges", "SIGMAS", "NEAR", "MIN_DARKER", "MIN_RIDGE",
           "MIN_LENGTH", "MAX_WIDTH", "STRAIGHT", "BRIDGE"]

#: The scales (Gaussian sigma, pixels) at which dark ridges are looked for: bands of about
#: 3 to 25 px (a band ``w`` wide answers most at sigma ``w / 3.5``).
SIGMAS = (1.5, 3.0, 6.0)
#: How far (pixels) a structure may move from a neighbour to the section and still count
#: as continuing into it.
NEAR = 4
#: How much darker than the neighbours' darkest pixel nearby (grey units of the stack's
#: scale, black 0, white 1) a pixel must be to be new darkness; twice this in some pixel of
#: every fold found.
MIN_DARKER = 0.08
#: Scale-normalised dark-ridge strength of the new darkness (grey units): at least this in
#: every pixel of a fold, twice this somewhere in it.
MIN_RIDGE = 0.0075
#: A fold is at least this share of the section's shorter side long.
MIN_LENGTH = 0.2
#: ... and at least this many pixels (or 60 % of the side, on sections smaller than 250 px).
MIN_PIXELS = 150
#: The most a fold may be thick on average (pixels; wider ones are the network's).
MAX_WIDTH = 40
#: A fold's oriented bounding box is at most this share of its length wide.
STRAIGHT = 0.2
#: Pieces of a fold within this many pixels of each other are one fold (a fold crossing a
#: membrane is interrupted there, the membrane being dark in the neighbours too).
BRIDGE = 4


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def dark_ridges(f: np.ndarray, sigmas=SIGMAS) -> np.ndarray:
    """Dark-ridge strength of ``f`` (float32, H x W), the most over ``sigmas``: per scale,
    ``sigma^2 * max(l1 - |l2|, 0)`` with ``l1 >= l2`` the eigenvalues of the Hessian of
    ``f`` smoothed by a Gaussian of that sigma (large across a dark band, small along it).
    Scales of 3 px and more are computed on ``f`` halved (a quarter of the work), as many
    times as keeps sigma under 3 there."""
    f = np.asarray(f, np.float32)
    best = np.zeros(f.shape, np.float32)
    for sigma in sigmas:
        g, k = f, 1
        while sigma / k >= 3.0 and min(g.shape) > 64:
            g = cv2.resize(g, ((g.shape[1] + 1) // 2, (g.shape[0] + 1) // 2),
                           interpolation=cv2.INTER_AREA)
            k *= 2
        s = sigma / k
        b = cv2.GaussianBlur(g, (0, 0), s)
        # 3 x 3 Sobel kernels are 4 times the (smoothed) derivatives
        dxx = cv2.Sobel(b, cv2.CV_32F, 2, 0, ksize=3) * 0.25
        dyy = cv2.Sobel(b, cv2.CV_32F, 0, 2, ksize=3) * 0.25
        dxy = cv2.Sobel(b, cv2.CV_32F, 1, 1, ksize=3) * 0.25
        mean = 0.5 * (dxx + dyy)
        root = np.sqrt(0.25 * (dxx - dyy) ** 2 + dxy ** 2)
        r = (s * s) * np.maximum((mean + root) - np.abs(mean - root), 0)
        if k > 1:
            r = cv2.resize(r, f.shape[::-1], interpolation=cv2.INTER_LINEAR)
        np.maximum(best, r, out=best)
    return best


def _min_length(shape) -> float:
    side = min(shape)
    return max(MIN_LENGTH * side, min(MIN_PIXELS, 0.6 * side))


def _is_fold(piece: np.ndarray, min_length: float) -> bool:
    """Whether the pixels ``piece`` (bool, a crop) are long, thin and nearly straight."""
    ys, xs = np.nonzero(piece)
    if len(xs) < 3:
        return False
    _, (a, b), _ = cv2.minAreaRect(np.stack([xs, ys], 1).astype(np.float32))
    length, across = max(a, b), min(a, b)
    return bool(length >= min_length and len(xs) / length <= MAX_WIDTH
                and across <= STRAIGHT * length)


def thin_folds(prev, section, next) -> np.ndarray:
    """The thin folds of ``section``: long, thin, nearly straight dark bands that neither
    neighbour shows there (see the module description).

    Parameters
    ----------
    prev, next : ndarray, shape (H, W), or None
        The neighbours, in the section's grey levels (matched and levelled as
        :func:`~.evidence.section_evidence` prepares them) and in units of the stack's
        scale (black 0, white 1). None: no neighbour on that side (then nothing is found:
        see the module description).
    section : ndarray, shape (H, W)
        The section, likewise.

    Returns
    -------
    ndarray of bool, shape (H, W)
        True on the folds found (their dark band; gaps where they cross a membrane, up to
        :data:`BRIDGE` px, closed). All False unless both neighbours are given.
    """
    sec = np.asarray(section, np.float32)
    out = np.zeros(sec.shape, bool)
    if prev is None or next is None or min(sec.shape) < 32:
        return out
    s = cv2.GaussianBlur(sec, (0, 0), 1.0)
    darkest = cv2.GaussianBlur(np.minimum(np.asarray(prev, np.float32),
                                          np.asarray(next, np.float32)), (0, 0), 1.0)
    new = cv2.erode(darkest, _disk(NEAR)) - s  # > 0: darker than anything near, both sides
    ridge = dark_ridges(-new)
    cand = (ridge > MIN_RIDGE) & (new > MIN_DARKER)
    if not cand.any():
        return out
    seed = (ridge > 2 * MIN_RIDGE) & (new > 2 * MIN_DARKER)
    bridge = _disk(BRIDGE)
    grouped = cv2.dilate(cand.astype(np.uint8), bridge)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
    keep = np.bincount(labels[seed], minlength=n) > 0
    keep &= np.maximum(stats[:, 2], stats[:, 3]) >= 0.7 * _min_length(sec.shape)
    keep[0] = False
    min_length = _min_length(sec.shape)
    for k in np.flatnonzero(keep):
        x, y, w, h = (int(v) for v in stats[k, :4])
        box = (slice(y, y + h), slice(x, x + w))
        piece = (labels[box] == k) & cand[box]
        if _is_fold(piece, min_length):
            # the gaps bridged closed (a closing of the piece, within its group)
            closed = cv2.morphologyEx(np.pad(piece, BRIDGE).astype(np.uint8), cv2.MORPH_CLOSE,
                                      bridge)[BRIDGE:-BRIDGE, BRIDGE:-BRIDGE].astype(bool)
            out[box] |= closed & (labels[box] == k)
    return out
