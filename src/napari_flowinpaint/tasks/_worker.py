"""The worker side of :mod:`.parallel`: what a worker process does when it starts (end with
its parent, keep to its share of the cores) and between tasks (one engine per settings, memory
given back)."""

from __future__ import annotations

import functools
import os

__all__ = ["init_worker", "release_memory", "use_worker_threads", "worker_engine"]


def use_worker_threads() -> None:
    """Keep torch and OpenCV to this worker's share of the cores, ``FLOWINPAINT_WORKER_THREADS``
    (set for local workers; a cluster's workers may set it too). Without it each library
    takes every core, and two workers on two cores run four threads of each."""
    threads = os.environ.get("FLOWINPAINT_WORKER_THREADS")
    if not threads:
        return
    import cv2
    import torch

    if torch.get_num_threads() != int(threads):
        torch.set_num_threads(int(threads))
    cv2.setNumThreads(int(threads))


@functools.lru_cache(maxsize=2)
def worker_engine(settings: tuple):
    """The engine of this process for ``settings`` (``(weights, device, stages, flow_method,
    mode)``),
    built on the first task and reused: a worker loads the networks once, and keeps to its
    share of the cores (:func:`use_worker_threads`)."""
    from ..engine import FlowInpainter

    use_worker_threads()
    weights, device, stages, flow_method, mode = settings
    return FlowInpainter(weights, device=device, stages=stages, flow_method=flow_method,
                         mode=mode)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None elsewhere (macOS, Windows, musl)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_memory() -> None:
    """Give the memory freed by a finished task back to the system (glibc's ``malloc_trim``;
    nothing elsewhere). glibc keeps what a repair freed (a few hundred MB for a 2048^2
    section) for the next one; two workers both sitting on it while one of them starts its
    next repair raise the peak of the run by about 0.1 GB. Once per task it costs nothing
    measurable (a threshold that trims at every free cost 1.8x: see :class:`SectionRunner`)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _die_with_parent(parent: int) -> None:
    """End this worker process when ``parent``, the process that started it, ends, however
    it ends (``kill -9`` included): without it, workers of a killed run would go on holding
    their memory forever. On Linux the kernel sends SIGKILL (``prctl(PR_SET_PDEATHSIG)``);
    elsewhere a daemon thread checks every second that the parent is still there."""
    import signal
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        try:
            set_death_signal = ctypes.CDLL(None, use_errno=True).prctl(
                1, int(signal.SIGKILL), 0, 0, 0) == 0  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            set_death_signal = False
        if set_death_signal:
            if os.getppid() != parent:  # it ended before the signal was set
                os._exit(1)
            return
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="flowinpaint-parent-watch", daemon=True).start()


def init_worker(threads: int, parent: int | None = None) -> None:
    """Start-up of a local worker process: it ends with ``parent`` (:func:`_die_with_parent`)
    and keeps to its share of the cores for torch and OpenCV (:func:`use_worker_threads`
    applies it)."""
    if parent is not None:
        _die_with_parent(parent)
    os.environ["FLOWINPAINT_WORKER_THREADS"] = str(threads)
