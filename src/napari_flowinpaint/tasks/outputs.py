"""The outputs of the volume commands: a resumable zarr store or an atomic writer (TIFF, HDF5,
a folder of sections, MRC), what happens to them when a run stops (kept to resume, or
removed), and the lock that keeps two runs from writing one output at once."""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .io import stack_format
from .io.targets import stack_file
from .parallel import ResumableStore

__all__ = ["Ones", "aborting", "guarded", "keep_partial", "lock_path", "output_lock",
           "resumable_output"]


def resumable_output(output, shape, dtype, *, run, overwrite, protect, voxel_size, description=None,
            confidence=False):
    """A :class:`ResumableStore` for zarr (None for the other formats: the caller uses a
    StackWriter)."""
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


def lock_path(dest) -> Path:
    """The lock file of the output ``dest``: in this user's lock folder of the temporary
    folder (never beside the data), named after the fingerprint of ``dest``'s full path
    (its folder with links resolved; an HDF5 file's, whatever the dataset; a folder's,
    whatever its ``*.png``), so that every spelling of one output shares it."""
    import hashlib
    import tempfile

    dest = stack_file(dest)
    full = os.path.join(os.path.realpath(dest.parent), dest.name)
    folder = Path(tempfile.gettempdir()) / f"napari-flowinpaint-locks-{os.getuid()}" \
        if hasattr(os, "getuid") else Path(tempfile.gettempdir()) / "napari-flowinpaint-locks"
    return folder / f"{hashlib.blake2b(full.encode(), digest_size=16).hexdigest()}.lock"


@contextmanager
def output_lock(*outputs):
    """Hold the lock of every output in ``outputs`` (None entries are skipped) while the
    block runs: a second run onto one of them is refused at once, instead of the two
    writing (and removing) each other's files.

    A lock is a file in this user's lock folder of the temporary folder, named after the
    output's full path (:func:`lock_path`), created exclusively (``O_CREAT | O_EXCL``) with
    the process id and host name in it, and removed when the block ends, however it ends.
    One left by a run that was killed (``kill -9``) is taken over once its process is gone.
    Runs on other hosts (another login node of a shared file system) are not seen. An
    output whose folder is missing gets no lock (its own check says what is wrong), nor
    does one whose lock cannot be written.

    Raises
    ------
    FileExistsError
        Another run (its pid) holds the lock of an output.
    """
    held = []
    try:
        for dest in outputs:
            if dest is not None and lock_path(dest) not in held:
                lock = _take_lock(stack_file(dest))
                if lock is not None:
                    held.append(lock)
        yield
    finally:
        mine = _owner_text()
        for lock in held:
            try:
                if lock.read_text() == mine:  # never another run's (it took a stale one)
                    lock.unlink()
            except OSError:
                pass


def _owner_text() -> str:
    return f"{os.getpid()} {socket.gethostname()}\n"


def _take_lock(dest: Path) -> Path | None:
    lock = lock_path(dest)
    if not dest.absolute().parent.is_dir():
        return None
    try:
        lock.parent.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held_by = _holder(lock)
            if held_by is not None:
                pid, host = held_by
                where = "" if host == socket.gethostname() else f" on {host}"
                raise FileExistsError(
                    f"another run (pid {pid}{where}) is writing {str(dest)!r} (it holds the "
                    f"lock {str(lock)!r}); wait for it to end or write elsewhere. If no such "
                    "run is going, delete the lock file.") from None
            try:  # its run is gone: take it over
                lock.unlink()
            except FileNotFoundError:
                pass
            continue
        except OSError:  # a read-only folder: the output's own check says so
            return None
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(_owner_text())
        except OSError:  # a full disk: no lock, and the output's own check says so
            lock.unlink(missing_ok=True)
            return None
        return lock
    raise FileExistsError(f"could not take the lock {str(lock)!r} of {str(dest)!r}: other runs "
                          "keep taking it; run one command at a time on one output.")


def _holder(lock: Path) -> tuple[str, str] | None:
    """``(pid, host)`` of the run that holds ``lock``, or None when that run is gone (its
    process ended, or the file names none and is older than 10 s: not one being written)."""
    try:
        text = lock.read_text()
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError:
        return ("unknown", socket.gethostname())
    pid, _, host = text.strip().partition(" ")
    if not pid.isdigit():
        return None if age > 10 else ("unknown", socket.gethostname())
    if host and host != socket.gethostname():
        return pid, host  # cannot tell whether it runs
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, OverflowError):
        return None
    except PermissionError:  # it runs, as another user
        pass
    return pid, host or socket.gethostname()
