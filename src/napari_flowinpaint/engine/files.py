"""Safe file output: every file the package writes goes through :func:`atomic_output`.

A file (or a folder such as a zarr store) is written under a hidden temporary name beside
its destination, in the same folder so that the last step is a rename on one file system,
and moved into place only once complete. If anything fails, or the user presses Ctrl-C,
the temporary is removed and the destination is left as it was: an output is either
complete or absent. Before any work, :func:`check_output_path` refuses a destination that
is one of the inputs (also through ``..``, symbolic or hard links), that already exists
(unless overwriting was asked for) or whose folder is missing.

A process killed with SIGKILL cannot clean up: it may leave a hidden
``.NAME-XXXX.partial.EXT`` beside the destination, safe to delete.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_output", "check_output_path", "explain_write_error", "hidden_sibling",
           "move_into_place", "remove_path", "same_or_nested", "write_text"]


def same_or_nested(a, b) -> bool:
    """True when paths ``a`` and ``b`` are the same file or folder (after resolving ``..``
    and symbolic links, or as hard links of one file), or one lies inside the other."""
    a, b = Path(a).resolve(), Path(b).resolve()
    if a == b or a in b.parents or b in a.parents:
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path, *, protect: Iterable = (), overwrite: bool = False,
                      what: str = "output") -> Path:
    """Check that ``path`` may be written; return it as a Path.

    Parameters
    ----------
    path : str or Path
        The destination.
    protect : iterable of paths, keyword-only
        Paths that must never be written, typically the inputs (None entries are ignored).
    overwrite : bool, keyword-only
        Allow replacing an existing ``path``.
    what : str, keyword-only
        How the destination is called in error messages (e.g. ``"--report"``).

    Raises
    ------
    ValueError
        If ``path`` is (or is inside, or contains) a protected path.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If the folder that should hold ``path`` does not exist.
    """
    path = Path(path)
    for p in protect:
        if p is not None and same_or_nested(path, Path(p)):
            raise ValueError(
                f"refusing to write the {what} onto the input {str(p)!r}: the original data "
                "are never modified. Choose another path."
            )
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(
            f"the {what} {str(path)!r} already exists; pass overwrite=True (--overwrite on "
            "the command line) to replace it, or choose another path."
        )
    folder = path.resolve().parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"the folder {str(folder)!r} for the {what} does not exist; create it first."
        )
    try:  # a read-only or full folder fails here, before any work, not at the end
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write the {what} in the folder {str(folder)!r} "
                                   f"({exc.strerror or exc}); choose another folder.") from None
    return path


def explain_write_error(exc: OSError, tmp, dest, *, what: str = "output",
                        writing: bool = False) -> OSError:
    """An error raised while writing the temporary ``tmp``, reworded to name ``dest`` (the
    file the user asked for) and to say that nothing was left behind. Other errors are
    returned unchanged, unless ``writing`` says that the error came from writing ``tmp``.
    A full disk (or a short write, as some writers report it) says so."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, FileExistsError) or not (
            writing or full or str(tmp) in f"{exc} {exc.filename or ''}"):
        return exc
    why = exc.strerror or str(exc)
    if full or "written" in why:
        why += "; is the disk full?"
    new = type(exc)(exc.errno, f"could not write the {what} {str(dest)!r} ({why}); nothing "
                               "was left behind.")
    new.__cause__ = exc
    return new


def remove_path(path) -> None:
    """Delete a file, link or folder tree; nothing happens when it does not exist."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def hidden_sibling(path, tag: str = "partial") -> Path:
    """A new hidden name beside ``path``: ``.STEM-XXXXXXXX.TAG.SUFFIX``."""
    path = Path(path)
    return path.parent / f".{path.stem}-{secrets.token_hex(4)}.{tag}{path.suffix}"


def move_into_place(tmp, dest, *, overwrite: bool = False) -> None:
    """Move the finished ``tmp`` to ``dest``.

    Without ``overwrite`` a destination that appeared meanwhile is never replaced
    (:class:`FileExistsError`). A replaced folder is moved aside first and deleted only
    once the new one is in place; if the last rename fails the old one is put back.
    """
    tmp, dest = Path(tmp), Path(dest)
    if not (dest.exists() or dest.is_symlink()):
        os.rename(tmp, dest)  # fails, rather than replaces, if dest appeared meanwhile
        return
    if not overwrite:
        raise FileExistsError(f"the output {str(dest)!r} appeared while writing; nothing was "
                              "replaced.")
    if dest.is_file() and tmp.is_file():
        os.replace(tmp, dest)
        return
    old = hidden_sibling(dest, "old")
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except BaseException:
        os.rename(old, dest)  # put the original back
        raise
    remove_path(old)


@contextmanager
def atomic_output(path, *, overwrite: bool = True, protect: Iterable = (),
                  what: str = "output") -> Iterator[Path]:
    """Write ``path`` atomically: yields a temporary path to write to.

    On a clean exit the temporary is moved to ``path`` (:func:`move_into_place`); on any
    exception, :class:`KeyboardInterrupt` included, it is removed and ``path`` is untouched.
    The destination is checked first (:func:`check_output_path`).

    Examples
    --------
    >>> with atomic_output("report.csv", overwrite=False) as tmp:   # doctest: +SKIP
    ...     tmp.write_text("z,damaged\\n")
    """
    dest = check_output_path(path, protect=protect, overwrite=overwrite, what=what)
    tmp = hidden_sibling(dest)
    try:
        yield tmp
        move_into_place(tmp, dest, overwrite=overwrite)
    except OSError as exc:
        raise explain_write_error(exc, tmp, dest, what=what) from exc.__cause__
    finally:
        if tmp.exists() or tmp.is_symlink():
            remove_path(tmp)


def write_text(path, text: str, *, overwrite: bool = True, protect: Iterable = (),
               what: str = "output") -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, overwrite=overwrite, protect=protect, what=what) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
