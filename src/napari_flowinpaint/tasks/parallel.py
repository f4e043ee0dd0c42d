"""Whole volumes: sections processed in parallel (local processes, or a dask cluster), into
outputs that resume.

Two pieces, used by :func:`~napari_flowinpaint.tasks.volume.repair_to_file` and
:func:`~napari_flowinpaint.tasks.volume_detect.detect_to_file`:

* :class:`SectionRunner` runs one task per section (or block of sections) in this process,
  on local worker processes (``workers=N``) or on an existing dask cluster
  (``scheduler="tcp://..."``: a SLURM or Kubernetes cluster started with dask-jobqueue or
  dask-kubernetes). Each worker process builds the engine once and
  keeps it (:func:`worker_engine`).
* :class:`ResumableStore` is a zarr output written under a fixed hidden name beside the
  destination (``.NAME.partial.zarr``) with a journal of the finished sections. A run that
  was killed (``kill -9``, a lost node, Ctrl-C) and is started again with the same command
  continues where it stopped; the store is renamed to its name only once every section is
  in it, so an output is never left looking complete when it is not.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ..engine.files import check_output_path, move_into_place, remove_path
from ._worker import (  # noqa: F401 - the worker side, used by the runner and the tasks
    init_worker,
    release_memory,
    use_worker_threads,
    worker_engine,
)
from .io.writer import EMPTY_CHUNKS

__all__ = ["SectionRunner", "ResumableStore", "WORKER_MEMORY", "choose_workers", "copy_sections",
           "open_stack", "partial_path", "release_memory", "stack_source", "use_worker_threads",
           "worker_engine", "write_section"]

_RUN_FILE = "flowinpaint-run.json"
_JOURNAL = "flowinpaint-journal.jsonl"
_CONFIDENCE = "flowinpaint-confidence.zarr"


#: What a local worker may take at its peak, for the default number of workers: measured
#: 0.6-0.75 GB (RSS) repairing 2048^2 sections; bigger sections take more.
WORKER_MEMORY = 1 << 30


def choose_workers(workers: int | None, megapixels: float, *, seconds_per_mp: float) -> int:
    """The worker processes for a job: ``workers`` when given; otherwise one per core when
    the job would take this process over about 20 s (``megapixels`` of sections to process
    at ``seconds_per_mp``), as many as the free memory holds (:data:`WORKER_MEMORY` each),
    else 1: starting workers costs seconds of its own.

    On 2 cores two workers of one thread repaired a 200 x 2048^2 volume 1.18x faster than
    one process whose torch used both cores (28 against 32 s), and detected damage 1.19x
    faster (37 against 44 s for 40 sections)."""
    if workers is not None:
        return int(workers)
    if megapixels * seconds_per_mp <= 20.0:
        return 1
    import psutil

    cores = os.cpu_count() or 1
    room = int(psutil.virtual_memory().available // WORKER_MEMORY)
    return max(1, min(cores, room))


def partial_path(dest) -> Path:
    """The fixed hidden name a resumable output is written under: ``.NAME.partial.zarr``."""
    dest = Path(dest)
    return dest.parent / f".{dest.name}.partial.zarr"


class ResumableStore:
    """A zarr (or OME-Zarr) output stack that survives interruptions.

    Parameters
    ----------
    path : Path
        The destination (``.zarr`` or ``.ome.zarr``); checked like every output.
    shape, dtype : the stack's.
    run : dict
        What identifies the run (inputs, options): a partial store left by a run with
        another ``run`` is refused, never mixed in (and replaced when it holds no finished
        section). What each finished section was computed from is checked by the caller
        (the digests its journal row keeps; :meth:`discard` what no longer holds).
    overwrite : bool
        Replace an existing destination, and discard a partial store of another run.
    protect : paths the destination must not be.
    voxel_size : (z, y, x) in nm, optional.
    attributes : dict, optional
        Stored with the array (e.g. a description).
    """

    def __init__(self, path, shape, dtype, *, run: dict, overwrite: bool = False,
                 protect: Iterable = (), voxel_size=None, attributes: dict | None = None,
                 confidence: bool = False):
        from .io.ome import is_ome_path

        self.path = check_output_path(path, protect=protect, overwrite=overwrite)
        self.partial = partial_path(self.path)
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        self.ome = is_ome_path(self.path)
        self.overwrite, self.voxel_size = overwrite, voxel_size
        self.run = json.loads(json.dumps(run))  # as it reads back from the file
        self.done: dict[int, dict] = {}
        if self.partial.exists():
            if self._load() != self.run:
                if self.done and not overwrite:  # nothing finished: nothing to lose
                    raise FileExistsError(
                        f"{str(self.partial)!r} holds the partial output of another run (other "
                        f"inputs or options, {len(self.done)} section(s) finished); run that "
                        "command again to finish it, or delete it (or pass --overwrite) to "
                        "start this one.")
                remove_path(self.partial)
                self.done = {}
        if not self.partial.exists():
            self._create(attributes or {})
        self.array_path = self.partial / "0" if self.ome else self.partial
        #: a float32 array of the confidence maps (1 where nothing was repaired) kept with
        #: the sections, so that a resumed run has the confidence of what it finished
        self.confidence_path = self.partial / _CONFIDENCE if confidence else None
        if confidence and not self.confidence_path.exists():
            import zarr

            zarr.create_array(store=str(self.confidence_path), shape=self.shape,
                              dtype=np.float32, fill_value=1.0,
                              chunks=(1, min(self.shape[1], 2048), min(self.shape[2], 2048)))

    def _load(self) -> dict | None:
        try:
            run = json.loads((self.partial / _RUN_FILE).read_text())
        except (OSError, ValueError):
            return None
        journal = self.partial / _JOURNAL
        if journal.is_file():
            for line in journal.read_text().splitlines():
                try:  # a line cut by a kill is skipped: that section is redone
                    row = json.loads(line)
                    self.done[int(row["z"])] = row
                except (ValueError, KeyError, TypeError):
                    continue
        return run

    def _create(self, attributes: dict) -> None:
        import zarr

        attrs = dict(attributes)
        if self.voxel_size is not None:
            attrs.update(voxel_size=[float(v) for v in self.voxel_size], voxel_unit="nm")
        y, x = self.shape[1:]
        spec = dict(shape=self.shape, dtype=self.dtype, dimension_names=("z", "y", "x"),
                    chunks=(1, min(y, 2048), min(x, 2048)), config=EMPTY_CHUNKS)
        try:
            if self.ome:
                zarr.open_group(str(self.partial), mode="w", attributes=attrs) \
                    .create_array("0", **spec)
            else:
                zarr.create_array(store=str(self.partial), attributes=attrs, **spec)
            (self.partial / _RUN_FILE).write_text(json.dumps(self.run))
        except BaseException:
            remove_path(self.partial)
            raise

    def record(self, z: int, **row) -> None:
        """Journal section ``z`` as finished (with the values of its report row)."""
        row = {"z": int(z), **row}
        with open(self.partial / _JOURNAL, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.done[int(z)] = row

    def annotate(self, *, root: bool = False, **attributes) -> None:
        """Add ``attributes`` to the output array's (kept when it is committed); with
        ``root``, to the store's root (an OME-Zarr's group, the array of a plain zarr)."""
        import zarr

        node = zarr.open(store=str(self.partial if root else self.array_path), mode="r+")
        node.attrs.update(attributes)

    def discard(self, zs) -> list[int]:
        """Forget sections ``zs`` as finished (they are done again); returns them sorted."""
        zs = sorted(int(z) for z in zs)
        for z in zs:
            self.done.pop(z, None)
        return zs

    def write(self, z: int, section) -> None:
        """Write section ``z`` from this process (workers write with :func:`write_section`)."""
        write_section(self.array_path, z, section)

    def commit(self) -> Path:
        """Every section is in: add the pyramid (OME-Zarr), drop the journal, move the store
        to its name."""
        missing = sorted(set(range(self.shape[0])) - set(self.done))
        if missing:
            raise RuntimeError(f"sections {missing[:10]} are not written yet.")
        if self.ome:
            import zarr

            from .io.ome import write_pyramid

            write_pyramid(zarr.open_group(str(self.partial), mode="r+"),
                          voxel_size=self.voxel_size, name=self.path.name)
        for name in (_RUN_FILE, _JOURNAL, _CONFIDENCE):
            remove_path(self.partial / name)
        move_into_place(self.partial, self.path, overwrite=self.overwrite)
        return self.path


def write_section(array_path, z: int, section) -> None:
    """Write one section into the zarr array at ``array_path`` (from any process)."""
    import zarr

    out = zarr.open_array(str(array_path), mode="r+").with_config(EMPTY_CHUNKS)
    out[int(z)] = np.asarray(section, dtype=out.dtype)


@functools.lru_cache(maxsize=4)
def open_stack(path: str, name: str):
    """:func:`~napari_flowinpaint.tasks.io.read_stack`, once per process and file: a worker
    running many tasks on one stack opens it once (a TIFF is read once)."""
    from .io import read_stack

    return read_stack(path, name=name, sparse=name == "mask")  # masks are stored sparsely


def stack_source(stack, name: str):
    """A task's stack: the array itself (in this process) or a path, which a worker opens
    once (:func:`open_stack`)."""
    return open_stack(str(stack), name) if isinstance(stack, str | Path) else stack


def copy_sections(source, array_path, zs) -> dict[int, str]:
    """Copy sections ``zs`` of ``source`` (an array, or a stack file's path) unchanged into
    the output array; returns the digest of each section copied (for the journal)."""
    from .fingerprints import section_digest

    stack = stack_source(source, "input")
    digests = {}
    for z in zs:
        section = np.asarray(stack[z])
        write_section(array_path, z, section)
        digests[int(z)] = section_digest(section)
    return digests


class SectionRunner:
    """Runs section tasks here, on ``workers`` local processes, or on a dask cluster.

    Local workers are spawned processes (:class:`concurrent.futures.ProcessPoolExecutor`),
    each with its share of the cores for torch, which end with this process even when it is
    killed (:func:`_die_with_parent`); a cluster is reached through
    dask.distributed. (Local dask workers were tried first: a repair ran about twice as
    slowly inside them. dask's nannies set ``MALLOC_TRIM_THRESHOLD_``, and glibc then serves
    every big tensor from fresh pages: any value of it, 64 kB to 128 MB, cost the same 1.8x
    here. A dask cluster for repairs is best started without it.)

    Parameters
    ----------
    workers : int
        Local worker processes; 1 runs everything in this process.
    scheduler : str, optional
        Address of a running dask.distributed scheduler (``tcp://host:8786``); ``workers``
        is then ignored.
    log : callable(str), optional
        Told where the dask dashboard is.

    Examples
    --------
    >>> with SectionRunner(workers=2) as runner:                 # doctest: +SKIP
    ...     for item, result in runner.map([(task, 1), (task, 2)]):
    ...         print(item, result)
    """

    def __init__(self, workers: int = 1, scheduler: str | None = None,
                 log: Callable[[str], None] | None = None):
        workers = int(workers)
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}.")
        self.workers, self.scheduler, self.log = workers, scheduler, log
        self.client = self._pool = None

    @property
    def parallel(self) -> bool:
        return self.scheduler is not None or self.workers > 1

    def __enter__(self) -> SectionRunner:
        if self.scheduler is not None:
            from distributed import Client

            try:
                self.client = Client(self.scheduler, timeout="10s")
            except OSError as exc:
                raise OSError(f"cannot reach the dask scheduler at {self.scheduler!r} ({exc}); "
                              "check the address and that the cluster is running.") from None
            if self.log is not None:
                self.log(f"dask dashboard: {self.client.dashboard_link}")
        elif self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=init_worker,
                                             initargs=(threads, os.getpid()))
        return self

    def _submit(self, function: Callable, *args):
        if self.client is not None:
            return self.client.submit(function, *args, pure=False)
        return self._pool.submit(function, *args)

    def map(self, items: list[tuple], *,
            should_stop: Callable[[], bool] | None = None) -> Iterator[tuple[tuple, object]]:
        """Run every item ``(function, *arguments)``, yielding ``(item, result)`` as each is
        done (in order here, as they finish on workers). The functions must be importable
        (module level) for workers to run them. Stops early when ``should_stop()`` is True;
        tasks not started are then cancelled."""
        if not self.parallel:
            for item in items:
                if should_stop is not None and should_stop():
                    return
                yield item, item[0](*item[1:])
            return
        if self.client is not None:
            from distributed import as_completed
        else:
            from concurrent.futures import as_completed
        futures = {self._submit(*item): item for item in items}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
                if should_stop is not None and should_stop():
                    return
        finally:
            for future in futures:
                future.cancel()

    def call(self, function: Callable, *args):
        """``function(*args)`` on a worker (here without workers), e.g. to check settings.

        With local workers it is sent to each of them at once, so that they all start (and
        load what ``function`` loads, such as the engine) side by side rather than one after
        the other; the first result is returned, and the first error raised."""
        if not self.parallel:
            return function(*args)
        copies = self.workers if self._pool is not None else 1
        futures = [self._submit(function, *args) for _ in range(copies)]
        return [f.result() for f in futures][0]

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self._pool is not None:
            # after an error or Ctrl-C, do not wait for the tasks still running
            self._pool.shutdown(wait=exc[0] is None, cancel_futures=True)
        self.client = self._pool = None
