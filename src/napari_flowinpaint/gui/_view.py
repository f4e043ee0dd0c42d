"""Big stacks in the Repair widget, without napari: the lazy result view, temporary zarr arrays
(masks and repaired sections of big lazy stacks) and the scan for painted sections.

A stack is *lazy* when its layer holds anything but a numpy array (a dask or zarr array, as
napari-ome-zarr or ``da.from_zarr`` give): it is read a section at a time, never whole.
"""

from __future__ import annotations

import operator
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..tasks.io import stack_nbytes

__all__ = ["LAZY_BYTES", "SPILL_BYTES", "MaskCensus", "MaskReadError", "RepairedView",
           "is_big_lazy", "is_lazy", "painted_sections", "scan_painted", "stack_nbytes",
           "temporary_zarr", "writable_mask"]

#: A lazy image bigger than this (in bytes) is *big*: **New mask** makes a zarr-backed mask
#: and its repaired sections go to a temporary zarr store from the first one.
LAZY_BYTES = 256 << 20
#: Repaired sections held in memory beyond this many bytes move to a temporary zarr store.
SPILL_BYTES = 2 << 30


def is_lazy(data) -> bool:
    """Whether a layer's data are read on demand (dask, zarr, ...) rather than a numpy array."""
    return not isinstance(data, np.ndarray)


def is_big_lazy(data) -> bool:
    """Whether ``data`` is lazy and bigger than :data:`LAZY_BYTES`."""
    return is_lazy(data) and stack_nbytes(data) > LAZY_BYTES


def _is_zarr(data) -> bool:
    return type(data).__module__.split(".")[0] == "zarr"


def writable_mask(data) -> bool:
    """Whether a mask's data can take new labels section by section: a numpy array, or a zarr
    array opened for writing (a dask array is read-only)."""
    if isinstance(data, np.ndarray):
        return bool(data.flags.writeable)
    return _is_zarr(data) and not getattr(data, "read_only", False)


def temporary_zarr(shape, dtype, name: str):
    """A new zarr array of zeros in a temporary folder, one chunk per section tile.

    The folder is deleted once the array is no longer used (or when Python exits).
    """
    import zarr

    shape = tuple(int(s) for s in shape)
    folder = tempfile.mkdtemp(prefix="flowinpaint-")
    chunks = (1,) + tuple(min(int(s), 1024) for s in shape[1:])
    try:
        array = zarr.create_array(store=str(Path(folder) / name), shape=shape,
                                  dtype=np.dtype(dtype), chunks=chunks, fill_value=0)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    weakref.finalize(array, shutil.rmtree, folder, True)
    return array


class MaskCensus:
    """What a scan saw of a mask: voxels read, voxels marked, and the distinct labels (up to
    :attr:`MAX_LABELS`, from every 4th pixel of each section): a damage mask has one or a
    few labels, a segmentation many."""

    MAX_LABELS = 1000

    def __init__(self):
        self.voxels = 0
        self.marked = 0
        self.labels: set[int] = set()

    def add(self, section: np.ndarray) -> int:
        """Count one section; returns its marked pixels."""
        marked = int(np.count_nonzero(section))
        self.voxels += section.size
        self.marked += marked
        if marked and len(self.labels) < self.MAX_LABELS:
            sub = section[::4, ::4]
            self.labels.update(int(v) for v in np.unique(sub[sub != 0])[:self.MAX_LABELS])
        return marked

    @property
    def share(self) -> float:
        """Fraction of the voxels read that are marked."""
        return self.marked / self.voxels if self.voxels else 0.0


def painted_sections(masks, census: MaskCensus | None = None) -> Iterator[tuple[int, bool]]:
    """``(z, painted)`` for each section of ``masks`` in turn, read one at a time: whether
    it marks any damaged pixel (counted into ``census`` when given). A generator, so a
    worker can stop between sections."""
    for z in range(int(masks.shape[0])):
        section = np.asarray(masks[z])
        yield z, bool(census.add(section) if census is not None else section.any())


class MaskReadError(Exception):
    """Reading section :attr:`z` of a mask failed; ``__cause__`` is the error."""

    def __init__(self, z: int):
        super().__init__(f"reading section {z} of the mask failed")
        self.z = z


def scan_painted(masks, every: float = 0.1, census: MaskCensus | None = None
                 ) -> Iterator[tuple[int, list[int] | None]]:
    """Find the painted sections of ``masks`` (:func:`painted_sections`), reporting as it
    goes: yields ``(z, None)`` after section ``z`` at most every ``every`` seconds (so that
    a worker can show progress and stop, without a signal per section of a long stack),
    then ``(n, painted)`` once every section was read. ``census`` counts what was marked.

    Raises
    ------
    MaskReadError
        When a section cannot be read, naming it.
    """
    painted, last, done = [], time.perf_counter(), 0
    sections = painted_sections(masks) if census is None else painted_sections(masks, census)
    while True:
        try:
            z, hit = next(sections)
        except StopIteration:
            break
        except Exception as exc:
            raise MaskReadError(done) from exc  # the section after the last one read
        done = z + 1
        if hit:
            painted.append(z)
        if time.perf_counter() - last >= every:
            last = time.perf_counter()
            yield z, None
    yield int(masks.shape[0]), painted


class RepairedView:
    """A 3-D stack seen with its repaired sections put in: a lazy, read-mostly array.

    ``view[z] = section`` records a repaired section; reading returns it where it is one and
    reads ``source`` (numpy, dask, zarr, ...) elsewhere, only the sections asked for. The
    source is never written. napari displays it like any array (``shape``, ``dtype``,
    ``ndim``, ``size``, ``__getitem__``); ``np.asarray(view)`` reads every section.

    Repaired sections are held in memory until they would take more than ``spill_bytes``;
    then they all move to a temporary zarr store (:attr:`store`), deleted when the view is.

    Parameters
    ----------
    source : array_like, shape (Z, Y, X)
        The original stack.
    spill_bytes : int, optional, keyword-only
        Memory allowed for repaired sections (default :data:`SPILL_BYTES`); 0 stores them
        on disk from the first one.
    """

    ndim = 3

    def __init__(self, source, *, spill_bytes: int | None = None):
        shape = tuple(int(s) for s in source.shape)
        if len(shape) != 3:
            raise ValueError(f"a repaired view needs a 3-D stack (z, y, x), got shape {shape}.")
        self.source = source
        self.shape = shape
        self.dtype = np.dtype(source.dtype)
        self.spill_bytes = SPILL_BYTES if spill_bytes is None else int(spill_bytes)
        #: The temporary zarr array holding the repaired sections once they spilled, or None.
        self.store = None
        self._held: dict[int, np.ndarray] = {}
        self._stored: set[int] = set()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ description
    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes of the whole stack, as if it were read (it is not)."""
        return self.size * self.dtype.itemsize

    @property
    def repaired(self) -> list[int]:
        """The sections repaired so far, in z order."""
        with self._lock:
            return sorted(set(self._held) | self._stored)

    @property
    def held_bytes(self) -> int:
        """Bytes of repaired sections held in memory (0 once they went to :attr:`store`)."""
        with self._lock:
            return sum(a.nbytes for a in self._held.values())

    @property
    def storage_path(self) -> Path | None:
        """The folder of the temporary store, once the sections spilled there."""
        if self.store is None:
            return None
        return Path(str(self.store.store.root))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (f"<RepairedView {self.shape} {self.dtype}, {len(self.repaired)} repaired "
                f"section(s) over {type(self.source).__name__}>")

    # ------------------------------------------------------------------ writing
    def __setitem__(self, z, section) -> None:
        if not isinstance(z, int | np.integer):
            raise TypeError("a repaired view takes whole sections: view[z] = section.")
        z = self._index(z)
        arr = np.array(section, dtype=self.dtype, copy=True)
        if arr.shape != self.shape[1:]:
            raise ValueError(f"section {z} has shape {arr.shape}, expected {self.shape[1:]}.")
        with self._lock:
            if self.store is None and self.held_bytes + arr.nbytes > self.spill_bytes:
                self._spill()
            if self.store is not None:
                self.store[z] = arr
                self._stored.add(z)
            else:
                self._held[z] = arr

    def _spill(self) -> None:
        self.store = temporary_zarr(self.shape, self.dtype, "repaired.zarr")
        for z, arr in sorted(self._held.items()):
            self.store[z] = arr
            self._stored.add(z)
        self._held.clear()

    # ------------------------------------------------------------------ reading
    def section(self, z: int) -> np.ndarray | None:
        """Repaired section ``z`` (a copy), or None when it was not repaired."""
        z = self._index(z)
        with self._lock:
            if z in self._held:
                return self._held[z].copy()
            if z in self._stored:
                return np.asarray(self.store[z])
        return None

    def _index(self, z) -> int:
        n = self.shape[0]
        z = operator.index(z)
        if not -n <= z < n:
            raise IndexError(f"section {z} is outside the stack (0 to {n - 1}).")
        return z % n

    def _split(self, key) -> tuple:
        key = key if isinstance(key, tuple) else (key,)
        dots = [i for i, k in enumerate(key) if k is Ellipsis]
        if len(dots) > 1:
            raise IndexError("an index can only have a single ellipsis ('...').")
        if dots:
            i = dots[0]
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1:]
        if any(k is None for k in key):
            raise IndexError("a repaired view cannot add axes (None in the index).")
        if len(key) > self.ndim:
            raise IndexError(f"too many indices: the view is {self.ndim}-D, got {len(key)}.")
        return (key[0] if key else slice(None)), tuple(key[1:])

    def _read(self, z: int, rest: tuple) -> np.ndarray:
        held = self.section(z)
        if held is not None:
            return np.array(held[rest])
        out = np.asarray(self.source[(z, *rest)])
        return out.copy() if isinstance(self.source, np.ndarray) else out

    def __getitem__(self, key):
        zkey, rest = self._split(key)
        if isinstance(zkey, int | np.integer):
            return self._read(self._index(zkey), rest)
        n = self.shape[0]
        if isinstance(zkey, slice):
            zs = range(n)[zkey]
            repaired = set(self.repaired)
            if not repaired.intersection(zs):
                out = np.asarray(self.source[(zkey, *rest)])
                return out.copy() if isinstance(self.source, np.ndarray) else out
            return np.concatenate(list(self._runs(zs, rest, repaired)))
        zs = np.arange(n)[np.asarray(zkey)]
        if zs.ndim != 1:
            raise IndexError("a repaired view takes one list of sections along z.")
        parts = [self._read(int(z), rest) for z in zs]
        if parts:
            return np.stack(parts)
        return np.empty((0, *np.empty(self.shape[1:], self.dtype)[rest].shape), self.dtype)

    def _runs(self, zs: range, rest: tuple, repaired: set) -> Iterator[np.ndarray]:
        """The sections ``zs`` in runs: each repaired one alone, each run of original ones
        read from the source in one call (when ``zs`` goes forward)."""
        i = 0
        while i < len(zs):
            j = i + 1
            if zs[i] not in repaired and zs.step > 0:
                while j < len(zs) and zs[j] not in repaired:
                    j += 1
                part = zs[i:j]
                yield np.asarray(self.source[(slice(part.start, part.stop, part.step), *rest)])
            else:
                yield self._read(zs[i], rest)[None]
            i = j

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("a repaired view cannot be seen as an array without a copy.")
        out = np.empty(self.shape, self.dtype)
        for z in range(self.shape[0]):
            out[z] = self._read(z, ())
        return out if dtype is None else out.astype(dtype, copy=False)

    def __deepcopy__(self, memo) -> RepairedView:
        """A new view over the same source with copies of the repaired sections (napari
        duplicates a layer this way)."""
        new = RepairedView(self.source, spill_bytes=self.spill_bytes)
        memo[id(self)] = new
        for z in self.repaired:
            new[z] = self.section(z)
        return new
