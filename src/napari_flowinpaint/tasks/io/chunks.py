"""Sections with a chunk missing: never read as blank sections.

Chunked formats (zarr, N5, HDF5) read a chunk that was never written, or was deleted, as the
array's fill value: a lost piece of an image would come back as a black section, repaired
from, or taken for damage, as if it were data. The readers check instead, and reading a
section with a chunk missing raises :class:`MissingSection`, one line naming the file, the
section and the chunk. Masks are read ``sparse`` (zarr leaves empty chunks out), unchecked.

* zarr: the chunk keys of the section, looked up in the store
  (:class:`~napari_flowinpaint.tasks.io.LazyStack`);
* N5, zarr by URL: tensorstore's own check (``fill_missing_data_reads`` off), its error
  turned into this one (:func:`tensorstore_missing`);
* HDF5: the chunk index of the dataset (:class:`Hdf5Chunks`).
"""

from __future__ import annotations

import itertools
import re

import numpy as np

__all__ = ["Hdf5Chunks", "MissingSection", "key_sections", "missing_section",
           "tensorstore_missing"]

_TS_MISSING = re.compile(r"NOT_FOUND: chunk .*? stored at (?:local file )?\"?(.+?)\"? is missing")


class MissingSection(ValueError):
    """A section read has a chunk missing from its file or store."""


def missing_section(name: str, path, z, chunks, *, reader: str, fill, hint: str = "",
                    within: str = "store") -> MissingSection:
    """The error for section ``z`` of the stack ``name`` at ``path``, whose ``chunks`` (a
    list of keys or coordinates) are missing from the ``within`` (``"store"``, ``"file"``),
    and which ``reader`` would read as ``fill``."""
    chunks = [str(c) for c in chunks]
    shown = ", ".join(chunks[:3]) + (", ..." if len(chunks) > 3 else "")
    return MissingSection(
        f"{name} {str(path)!r}: section {z} is missing from the {within} (no chunk {shown}): "
        f"{reader} would read it as the fill value {fill!r}, a blank section taken for data. "
        f"Restore the {within} from a copy{hint}.")


def key_sections(key, n: int) -> list[int]:
    """The sections (from 0) that the numpy index ``key`` reads of a stack of ``n``; an
    integer outside the stack gives none (the reader says what is wrong)."""
    first = key[0] if isinstance(key, tuple) and key else key
    if isinstance(first, int | np.integer):
        return [int(first) % n] if -n <= int(first) < n else []
    if isinstance(first, slice):
        return list(range(*first.indices(n)))
    if first is Ellipsis or (isinstance(key, tuple) and not key):
        return list(range(n))
    return np.unique(np.asarray(first, dtype=np.int64) % n).tolist()


def tensorstore_missing(exc: Exception, name: str, path, z: int | None, *, reader: str,
                        fill) -> MissingSection | None:
    """The :class:`MissingSection` that tensorstore's error ``exc`` (a read of section
    ``z``, or of several: None, with ``fill_missing_data_reads`` off) means, or None for any
    other error."""
    found = _TS_MISSING.search(str(exc))
    if found is None:
        return None
    where = z if z is not None else "(one of those read)"
    return missing_section(name, path, where, [found.group(1)], reader=reader, fill=fill)


class Hdf5Chunks:
    """Which sections of a chunked HDF5 dataset have every chunk written (h5py reads a chunk
    never written as the fill value). A dataset whose index holds all its chunks (one look
    at open) is never checked again; else each section is checked once, when first read.

    Parameters
    ----------
    dataset : h5py.Dataset
    name : str
    path
        The stack's path, for the error message.
    """

    def __init__(self, dataset, name: str, path):
        import h5py

        self.dataset, self.name, self.path = dataset, name, path
        self.shape, chunks = tuple(dataset.shape), dataset.chunks
        self.checked: set[int] = set()
        dsid = dataset.id
        if dataset.is_virtual or dataset.external:
            self.chunks, self.complete = None, True  # the data live in other files
        elif chunks is None:  # contiguous: allocated whole or not at all
            self.chunks = None
            self.complete = dsid.get_space_status() != h5py.h5d.SPACE_STATUS_NOT_ALLOCATED
        else:
            self.chunks = tuple(chunks)
            total = int(np.prod([-(-s // c) for s, c in zip(self.shape, chunks, strict=True)]))
            self.complete = dsid.get_num_chunks() >= total

    def check(self, key) -> None:
        """Raise :class:`MissingSection` for the first section ``key`` reads that has a
        chunk never written."""
        if self.complete:
            return
        for z in key_sections(key, self.shape[0]):
            if z in self.checked:
                continue
            if self.chunks is None:
                missing = ["(the whole dataset: it was never written)"]
            else:
                cz, cy, cx = self.chunks
                starts = itertools.product((z // cz * cz,), range(0, self.shape[1], cy),
                                           range(0, self.shape[2], cx))
                info = self.dataset.id.get_chunk_info_by_coord
                missing = [f"at {s}" for s in starts if info(s).byte_offset is None]
            if missing:
                fill = self.dataset.fillvalue
                raise missing_section(
                    self.name, self.path, z, missing, reader="HDF5",
                    fill=fill.item() if hasattr(fill, "item") else fill,
                    hint="; if the section is blank on purpose, write it out", within="file")
            self.checked.add(z)
