"""Learning what is normal for a stack, sooner, and remembering it by the data's content.

:func:`~.detector.iter_normal_region_area` judges up to 9 sections spread through a stack.
It judges them in an order in which every prefix is spread through the stack too
(:func:`spread_order`: the middle, both ends, the quarters, then the rest), so that when the
first :data:`AGREE` of them agree (:func:`first_agree`: none of them shows a region, or every
one of them is damaged) it can stop there: the first run on a 2048 x 2048 stack then judges
5 sections instead of 9 to 18.

What it learned is remembered for the array (by its ``id``, while it lives) and by the
content of the sections it read (:class:`NormalMemory`): a stack opened again, a copy of it
or the same file read into a new array is not judged again, and a stack whose sections
differ in any section read is.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from ..fingerprints import section_digest

__all__ = ["AGREE", "spread_order", "first_agree", "NormalMemory"]

#: When this many sections judged first (spread through the stack) agree, no more are judged.
AGREE = 5


def spread_order(items) -> list:
    """``items`` reordered so that each prefix is spread through them: the middle one first,
    then each time the one farthest from those taken (the lowest on a tie). For 9 items:
    positions 4, 0, 8, 2, 6, 1, 3, 5, 7."""
    items = list(items)
    n = len(items)
    if n <= 2:
        return items
    taken = [(n - 1) // 2]
    gap = np.abs(np.arange(n) - taken[0])
    while len(taken) < n:
        k = int(np.argmax(gap))  # the first of the farthest
        taken.append(k)
        gap = np.minimum(gap, np.abs(np.arange(n) - k))
        gap[taken] = -1
    return [items[k] for k in taken]


def first_agree(largest: list[int], judged: int) -> bool:
    """Whether the first ``judged`` sections agree: every one of them typical and none
    showing a region (``largest``: the largest region of each typical one, 0 for none), or
    none of them typical (every one found damaged over more than 1 % of its area)."""
    return judged > 0 and (not largest or (len(largest) == judged and not any(largest)))


class NormalMemory:
    """Normal region areas measured before: by array (its ``id``, while the array lives)
    and by content (the digests of the sections read to measure it), ``limit`` of each.

    ``meta`` (any hashable: shape, dtype, options, weights) must match too. Thread-safe.
    """

    def __init__(self, limit: int = 16):
        self.limit = int(limit)
        self._by_array: dict = {}  # (id, meta) -> (weak reference, value)
        self._by_content: dict = {}  # meta -> list of (reads {str(z): digest}, value)
        self._lock = threading.Lock()

    def known(self, arr, meta) -> int | None:
        """The value remembered for ``arr`` (the same object, or one holding the same
        sections wherever a measurement read them), else None. Checking content reads and
        hashes those sections, only when a measurement with the same ``meta`` is kept."""
        with self._lock:
            hit = self._by_array.get((id(arr), meta))
            candidates = list(self._by_content.get(meta, ()))
        if hit is not None and hit[0]() is arr:
            return hit[1]
        digests: dict[str, str] = {}

        def digest(z: str) -> str:
            if z not in digests:
                digests[z] = section_digest(np.asarray(arr[int(z)]))
            return digests[z]

        n = int(arr.shape[0])
        for reads, value in reversed(candidates):  # the latest first
            if reads and all(0 <= int(z) < n for z in reads) and \
                    all(digest(z) == d for z, d in reads.items()):
                self.remember(arr, meta, value)
                return value
        return None

    def remember(self, arr, meta, value: int, reads: dict | None = None) -> None:
        """Keep ``value`` for ``arr`` while it lives (not weakly referenceable: not kept by
        array) and, with ``reads`` (``{str(z): digest}`` of every section the measurement
        read, as a :class:`~napari_flowinpaint.tasks.fingerprints.ReadRecorder` keeps
        them), for any array holding those sections."""
        value = int(value)
        with self._lock:
            try:
                ref = weakref.ref(arr)
            except TypeError:
                ref = None
            if ref is not None:
                _bounded(self._by_array, self.limit)
                self._by_array[(id(arr), meta)] = (ref, value)
            if reads:
                kept = self._by_content.setdefault(meta, [])
                kept[:] = [(r, v) for r, v in kept if r != reads][-(self.limit - 1):]
                kept.append((dict(reads), value))
                while sum(len(v) for v in self._by_content.values()) > self.limit:
                    oldest = next(k for k, v in self._by_content.items() if v)
                    self._by_content[oldest].pop(0)
                    if not self._by_content[oldest]:
                        del self._by_content[oldest]

    def clear(self) -> None:
        with self._lock:
            self._by_array.clear()
            self._by_content.clear()


def _bounded(d: dict, limit: int) -> None:
    while len(d) >= limit:
        d.pop(next(iter(d)))
