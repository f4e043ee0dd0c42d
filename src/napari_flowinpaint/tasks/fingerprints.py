"""Content fingerprints: what a finished piece of work was computed from.

A resumed run, or an ``auto`` that finds the mask of an earlier detection, reuses work only
when it can prove the work was done on the same data: paths and shapes are not enough (a
mask edited since, an input replaced in place, another stack written under the same output
name). Each task reads its sections through a :class:`ReadRecorder`, which keeps a digest
(BLAKE2b of the section's dtype, shape and bytes) of every section read; the digests go into
the journal with the result, and :class:`SectionDigests` checks them against the data as
they are now.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

__all__ = ["ReadRecorder", "SectionDigests", "bytes_digest", "combine_digests", "file_digest",
           "section_digest", "stack_digest"]


def section_digest(section) -> str:
    """The fingerprint of one section: BLAKE2b (128 bits) of its dtype, shape and bytes."""
    a = np.ascontiguousarray(section)
    h = hashlib.blake2b(f"{a.dtype.str}{a.shape}".encode(), digest_size=16)
    h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


def combine_digests(digests) -> str:
    """One fingerprint for a sequence of digests (e.g. every section of a stack, in order)."""
    h = hashlib.blake2b(digest_size=16)
    for d in digests:
        h.update(str(d).encode())
    return h.hexdigest()


def stack_digest(stack) -> str:
    """One fingerprint for a whole stack: :func:`combine_digests` of its sections' digests
    (read one section at a time)."""
    return combine_digests(section_digest(np.asarray(stack[z])) for z in range(stack.shape[0]))


def bytes_digest(data: bytes) -> str:
    """The fingerprint of some bytes, the same as :func:`file_digest` of a file holding them."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_digest(path, *, algorithm: str = "blake2b") -> str | None:
    """The fingerprint of a file's bytes (e.g. a weights file), or None without a path:
    BLAKE2b (128 bits), or any other of :mod:`hashlib`'s ``algorithm`` (``"sha256"``, what
    a provenance record gives, for anyone to check with ``sha256sum``)."""
    if path is None:
        return None
    h = (hashlib.blake2b(digest_size=16) if algorithm == "blake2b"
         else hashlib.new(algorithm))
    with open(Path(path), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ReadRecorder:
    """A stack that keeps the digest of every section read through it.

    Stands for ``stack`` where a task reads whole sections (``view[z]``); ``reads`` maps
    ``str(z)`` to the digest of each section read, which is what the task's result depends
    on. Any other index raises :class:`TypeError`, so that nothing is read unrecorded.
    """

    def __init__(self, stack):
        self.stack = stack
        self.shape, self.dtype = tuple(stack.shape), np.dtype(stack.dtype)
        self.ndim = len(self.shape)
        self.reads: dict[str, str] = {}

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if not isinstance(key, int | np.integer):
            raise TypeError(f"a ReadRecorder reads whole sections (an int index), got {key!r}.")
        section = np.asarray(self.stack[int(key)])
        self.reads.setdefault(str(int(key)), section_digest(section))
        return section


class SectionDigests:
    """The digests of sections of named stacks as they are now, each read and hashed once.

    Parameters
    ----------
    **stacks
        The stacks by the names used in the journal (``input=stack, mask=masks``).
    """

    def __init__(self, **stacks):
        self.stacks = stacks
        self._cache: dict[tuple[str, int], str] = {}

    def __call__(self, name: str, z: int) -> str:
        key = (name, int(z))
        if key not in self._cache:
            self._cache[key] = section_digest(np.asarray(self.stacks[name][int(z)]))
        return self._cache[key]

    def matches(self, reads) -> bool:
        """Whether every section in ``reads`` (``{name: {str(z): digest}}``, as a task
        recorded them) is unchanged; False without a record (a journal of an older version)."""
        if not isinstance(reads, dict) or not reads:
            return False
        try:
            return all(self(name, int(z)) == digest for name, seen in reads.items()
                       for z, digest in seen.items())
        except (KeyError, ValueError, IndexError, TypeError):
            return False
