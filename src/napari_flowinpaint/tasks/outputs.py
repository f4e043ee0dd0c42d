"""The outputs of the volume commands: a resumable zarr store or an atomic TIFF writer, and
what happens to them when a run stops (kept to resume, or removed)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .io import stack_format
from .parallel import ResumableStore

__all__ = ["Ones", "aborting", "guarded", "keep_partial", "resumable_output"]


def resumable_output(output, shape, dtype, *, run, overwrite, protect, voxel_size, description=None,
            confidence=False):
    """A :class:`ResumableStore` for zarr (None for TIFF: the caller uses a StackWriter)."""
    if stack_format(output, for_writing=True) == "zarr":
        attrs = {"description": description} if description else None
        return ResumableStore(output, shape, dtype, run=run, overwrite=overwrite,
                              protect=protect, voxel_size=voxel_size, attributes=attrs,
                              confidence=confidence)
    return None


class Ones:
    """Stands for a stack of ones (the confidence of sections not repaired)."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def __getitem__(self, z) -> np.ndarray:
        return np.ones(self.shape[1:], np.float32)


@contextmanager
def aborting(writer):
    """Abort ``writer`` (if any) when the block raises; it is committed inside the block."""
    try:
        yield
    except BaseException:
        if writer is not None:
            writer.abort()  # nothing left to remove once it was committed
        raise


@contextmanager
def guarded(writer, store):
    """On the way out with an exception: a TIFF writer is aborted; a zarr partial store is
    kept after an interruption (to resume) and removed after an error (:func:`keep_partial`)."""
    try:
        yield
    except BaseException as exc:
        if writer is not None:
            writer.abort()
            raise
        raised = keep_partial(store, exc)
        if raised is exc:
            raise
        raise raised from exc


def keep_partial(store, exc: BaseException) -> BaseException:
    """After an interruption the partial store stays, to resume, if it holds a finished
    section; after an error (a full disk...), or when nothing was finished, it goes.
    Returns the exception to raise."""
    from ..engine.files import explain_write_error, remove_path

    if isinstance(exc, KeyboardInterrupt) and store.done:
        exc.resume_hint = (f"the finished sections are kept in {str(store.partial)!r}: run the "
                           "same command again to continue, or delete it.")
        return exc
    remove_path(store.partial)
    return explain_write_error(exc, store.partial, store.path) if isinstance(exc, OSError) \
        else exc
