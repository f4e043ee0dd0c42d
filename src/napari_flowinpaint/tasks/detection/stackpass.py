"""One pass over a stack: its sections read once while they are near the ones being judged
(blank ones noted), and one section judged with its nearest usable neighbours, and again
against the section beyond a neighbour that is damaged itself where damage was found.

Safe to use from several threads at once: :func:`~.detector.iter_detect_damage` judges two
sections at a time (:mod:`.threads`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from ...engine import as_slice
from .cues import is_blank, label_regions, to_unit
from .postprocess import keep_confirmed, odd_neighbour

__all__ = ["Sections", "judge_section"]


class Sections:
    """The sections of ``stack`` (Z, H, W; numpy, dask, zarr...), each read and checked
    once while it is kept, with whether it is blank (:func:`~.cues.is_blank` on ``scale``).
    ``raw_scale``: float data, brought to the units of this scale first (:func:`to_unit`)."""

    def __init__(self, stack, scale: tuple[float, float],
                 raw_scale: tuple[float, float] | None = None):
        self.stack, self.n = stack, int(stack.shape[0])
        self.scale, self.raw_scale = scale, raw_scale
        self._kept: dict[int, tuple[np.ndarray, bool]] = {}
        self._lock = threading.Lock()

    def get(self, k: int) -> tuple[np.ndarray, bool]:
        """Section ``k`` and whether it is blank."""
        with self._lock:
            hit = self._kept.get(k)
        if hit is None:  # read outside the lock: two threads may read it, one is kept
            sec = as_slice(np.asarray(self.stack[k]), name=f"stack[{k}]")
            if self.raw_scale is not None:
                sec = to_unit(sec, self.raw_scale)
            hit = (sec, is_blank(sec, self.scale))
            with self._lock:
                hit = self._kept.setdefault(k, hit)
        return hit

    def neighbour(self, z: int, step: int, start: int = 1) -> int | None:
        """The first non-blank section from ``start`` steps away (one missing skipped)."""
        for k in (z + start * step, z + (start + 1) * step):
            if 0 <= k < self.n and not self.get(k)[1]:
                return k
        return None

    def forget_below(self, k: int) -> set[int]:
        """Drop the sections before ``k``; the ids of the arrays still kept."""
        with self._lock:
            for key in [key for key in self._kept if key < k]:
                del self._kept[key]
            return {id(s) for s, _ in self._kept.values()}


def judge_section(sections: Sections, z: int,
                  judge: Callable[[int, int | None, int | None], np.ndarray]) -> np.ndarray:
    """The damage mask of section ``z`` (before :func:`~.postprocess.refine_mask`): all of
    it when it is blank, else ``judge(z, before, after)`` with its nearest usable
    neighbours (None: none on that side).

    A neighbour damaged itself around a region (the odd one of the section beyond it,
    itself and this section: a fold that displaced the tissue beside it, issue 26) gets a
    second opinion: the section judged again against the section beyond it; a region that
    opinion does not confirm was that neighbour's doing.
    """
    sec, blank = sections.get(z)
    if blank:
        return np.ones(sec.shape, bool)
    before, after = sections.neighbour(z, -1), sections.neighbour(z, 1)
    mask = judge(z, before, after)
    if not mask.any() or before is None or after is None:
        return mask
    labels = label_regions(mask)[1]
    doubts = {}
    for side, near in ((-1, before), (1, after)):
        far = sections.neighbour(z, side, abs(near - z) + 1)
        if far is None:
            continue
        odd = odd_neighbour(sections.get(far)[0], sections.get(near)[0], sec, labels)
        if odd.any():
            doubts[side] = (odd, judge(z, far if side < 0 else before,
                                       far if side > 0 else after))
    return keep_confirmed(labels, doubts, where=mask)
