"""Sections judged two at a time: most of a section's judgement (its cues, the hole filling,
the post-processing) runs on one core, so a second section judged beside it keeps a second
core busy. The masks are the very same: each section is judged alone, on its own thread
(torch runs the network with the threads it was given, on every thread)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

__all__ = ["in_order", "sections_at_once", "AT_ONCE", "AT_ONCE_PIXELS"]

#: How many sections are judged at once.
AT_ONCE = 2
#: Sections of more pixels than this are judged one at a time (each takes about 500 MB at
#: 2048 x 2048 while it is judged).
AT_ONCE_PIXELS = 2048 * 2048


def sections_at_once(sections: int, pixels: int) -> int:
    """How many of ``sections`` sections of ``pixels`` pixels to judge at once:
    :data:`AT_ONCE`, but one at a time for a single section, for sections larger than
    :data:`AT_ONCE_PIXELS`, and where torch keeps to one thread (a worker given its share of
    the cores, :func:`~napari_flowinpaint.tasks._worker.use_worker_threads`)."""
    import torch

    if sections < 2 or pixels > AT_ONCE_PIXELS or torch.get_num_threads() < 2:
        return 1
    return AT_ONCE


def in_order(fn: Callable, items: Iterable, *, at_once: int = AT_ONCE) -> Iterator:
    """``fn(item)`` for each of ``items``, up to ``at_once`` of them at a time on worker
    threads, yielded in the order of ``items`` (an exception raised by ``fn`` is raised
    here, in turn). Closing the generator (a caller that stops iterating: a cancel) drops
    the items not started; those running finish on their own and are thrown away."""
    items = iter(items)
    if at_once <= 1:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(at_once, thread_name_prefix="flowinpaint-detect")
    try:
        running = deque(pool.submit(fn, item)
                        for item in islice(items, at_once))
        while running:
            done = running.popleft().result()
            for item in items:  # the next one starts before this result is handed on
                running.append(pool.submit(fn, item))
                break
            yield done
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
