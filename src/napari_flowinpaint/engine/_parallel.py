"""Batches of tiles side by side: one torch thread on each of several worker threads.

On a CPU, torch splits every operation over its threads, and the threads meet at the end
of each operation. The networks run a few hundred operations per batch of tiles, so the
threads meet (and, waiting passively, wake each other) thousands of times per repair; on a
machine whose cores are busy with other work, each meeting waits for the slowest thread.
Separate batches on separate threads, each running torch on its own thread alone, never
meet until the end: on 2 idle cores the networks ran about 1.4x faster than with the
threads splitting each operation, and beside busy processes a slow thread delays only
its own batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["side_by_side"]


def side_by_side(fn: Callable, items: Sequence, workers: int) -> Iterator:
    """``fn(item)`` for each of ``items``, on ``workers`` threads at once (torch on one
    thread in each), yielded in the order of ``items``.

    With ``workers <= 1`` or a single item, everything runs here, on the caller's torch
    threads. Torch's thread count (:func:`torch.get_num_threads`) is the caller's again
    when this returns. Grad and inference modes are per thread: ``fn`` sets its own.
    """
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    outer = torch.get_num_threads()
    pool = ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="flowinpaint-tiles",
                              initializer=torch.set_num_threads, initargs=(1,))
    try:
        yield from pool.map(fn, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(outer)
