"""Where an output stack goes, and in what format: the rules of an output path (``-o``).

* ``out.tif`` / ``out.tiff``: a multi-page TIFF; ``out.zarr``: a zarr store;
  ``out.ome.zarr``: an OME-Zarr image (:mod:`.writer`).
* ``out.h5`` (``.hdf5``, ``.hdf``): an HDF5 file holding the stack as the dataset
  :data:`HDF5_DATASET`; ``out.h5:/volumes/repaired`` names the dataset. The file is the
  output (written whole, replaced whole with ``overwrite``): a dataset is never added to a
  file that exists.
* ``out/`` (a path ending in ``/``): a folder of one TIFF per section, ``0000.tif``,
  ``0001.tif``, ...; ``out/*.png`` (or ``out/section_*.tif``) says the image type and the
  names, the ``*`` standing for the zero-padded section number. The voxel size and the
  description go to :data:`SECTIONS_JSON` in the folder.
* ``out.mrc`` (``.mrcs``, ``.map``, ``.st``, ``.ali``, ``.rec``): an MRC file.

:func:`output_target` applies these rules; :func:`check_writable` says, before any work,
whether a dtype can be written in a format; :func:`stack_file` is the file or folder on disk
that any stack path (input or output) names, what outputs are checked against.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ...engine import files
from .formats import hdf5_parts, lazy_format, split_format
from .remote import is_url

__all__ = ["HDF5_DATASET", "SECTION_SUFFIXES", "SECTIONS_JSON", "WRITABLE", "OutputTarget",
           "check_output_path", "check_replaceable", "check_writable", "limits_dtype",
           "output_target",
           "stack_file", "written_stack"]

#: The dataset an HDF5 output holds when its path names none (where CREMI keeps its images).
HDF5_DATASET = "volumes/raw"
#: The file of a folder of sections that keeps the stack's voxel size and description.
SECTIONS_JSON = "stack.json"
#: The image types of a folder of sections.
SECTION_SUFFIXES = (".tif", ".tiff", ".png")
#: What every output path may be, for error messages.
WRITABLE = (".tif, .tiff, .zarr, .ome.zarr, HDF5 (.h5/.hdf5/.hdf, or 'FILE.h5:/dataset'), "
            "MRC (.mrc/.mrcs/.map/.st/.ali/.rec), or a folder of sections (a path ending in "
            "'/', or 'FOLDER/*.png' / 'FOLDER/*.tif')")

_EXTENSIONS = {".tif": "tiff", ".tiff": "tiff", ".zarr": "zarr"}
_MRC_DTYPES = (np.uint8, np.int8, np.int16, np.uint16, np.float32)
_PNG_DTYPES = (np.uint8, np.uint16)


class OutputTarget(NamedTuple):
    """An output path taken apart.

    Attributes
    ----------
    format : str
        ``"tiff"``, ``"zarr"``, ``"hdf5"``, ``"folder"`` or ``"mrc"``.
    file : Path
        The file or folder written (and replaced, and locked).
    inner : str
        HDF5: the dataset's path inside the file; folder: the pattern of the section names
        (``"*.tif"``); else ``""``.
    """

    format: str
    file: Path
    inner: str


def output_target(path) -> OutputTarget:
    """The format, file and dataset or name pattern of the output path ``path`` (see the
    module docstring for the rules).

    Raises
    ------
    ValueError
        For a path whose format cannot be told, or a bad pattern of section names.
    """
    text = str(path)
    if is_url(split_format(text)[1]):
        raise ValueError(f"the output {text!r} is a URL: outputs are written to local disk "
                         "only; give a local path (and copy the result up afterwards).")
    if text.endswith(("/", os.sep)) and text.rstrip("/" + os.sep):
        return OutputTarget("folder", Path(text), "*.tif")
    p = Path(text)
    if "*" in p.name:
        suffix = p.suffix.lower()
        if p.name.count("*") != 1 or suffix not in SECTION_SUFFIXES or "*" in str(p.parent) \
                or not p.name.endswith(f"*{p.suffix}"):
            raise ValueError(
                f"the output {text!r} is not a pattern of section names: write one '*' (the "
                "section number) right before the extension .tif, .tiff or .png, e.g. "
                "'sections/*.tif' or 'sections/z_*.png'.")
        return OutputTarget("folder", p.parent, p.name)
    fmt = lazy_format(text)
    if fmt == "hdf5":
        file, inner = hdf5_parts(text)
        return OutputTarget("hdf5", file, inner or HDF5_DATASET)
    if fmt == "mrc":
        return OutputTarget("mrc", p, "")
    if p.suffix.lower() in _EXTENSIONS:
        return OutputTarget(_EXTENSIONS[p.suffix.lower()], p, "")
    hint = (" For a folder of one image per section end the path with '/' ("
            f"{text.rstrip('/' + os.sep)}/)." if p.is_dir() or not p.suffix else
            f" For one {p.suffix[1:].upper()} file per section write 'FOLDER/*{p.suffix}'."
            if p.suffix.lower() in SECTION_SUFFIXES else "")
    raise ValueError(
        f"cannot tell the output format of {text!r} from its extension "
        f"{p.suffix or '(none)'!r}; supported: {WRITABLE}.{hint}")


def stack_file(path) -> Path:
    """The file or folder on disk that a stack path names: ``FORMAT:`` prefix, HDF5
    ``:/dataset`` and a folder's ``*.png`` pattern left out; ``path`` itself otherwise."""
    fmt, text = split_format(path)
    if fmt == "hdf5" or (fmt is None and lazy_format(text) == "hdf5"):
        return hdf5_parts(text)[0]
    p = Path(text)
    return p.parent if "*" in p.name else p


def written_stack(path) -> str:
    """The path that reads back the output written to ``path``: a folder's own path for
    ``out/*.png``, ``out.h5:/volumes/raw`` for ``out.h5``; ``path`` itself otherwise."""
    fmt, file, inner = output_target(path)
    if fmt == "folder":
        return str(file)
    return f"{file}:/{inner}" if fmt == "hdf5" else str(path)


def limits_dtype(path) -> bool:
    """Whether the output format of ``path`` refuses some dtypes (MRC, PNG sections)."""
    target = output_target(path)
    return target.format == "mrc" or target.inner.lower().endswith(".png")


def check_writable(target: OutputTarget, dtype) -> None:
    """Refuse, before any work, a dtype the output format cannot hold.

    Raises
    ------
    TypeError
        Naming the dtype, the format and what to write instead.
    """
    dtype = np.dtype(dtype)
    fmt, file, inner = target
    if fmt == "mrc" and dtype.type not in _MRC_DTYPES:
        raise TypeError(
            f"the output {str(file)!r} is MRC, which holds 8- and 16-bit integers and float32, "
            f"not {dtype}; write TIFF, zarr or HDF5 instead, or convert the stack first.")
    if fmt == "folder" and inner.lower().endswith(".png") and dtype.type not in _PNG_DTYPES:
        raise TypeError(
            f"the output {str(file / inner)!r} asks for PNG sections, which hold 8- or 16-bit "
            f"grey levels, not {dtype}; write TIFF sections ('{file}/*.tif') instead.")


def check_replaceable(target: OutputTarget) -> None:
    """Refuse to replace (``overwrite``) an existing folder that is not a folder of sections:
    only one holding nothing but section images and :data:`SECTIONS_JSON` (what a folder
    output is) is ever deleted for a new one.

    Raises
    ------
    ValueError
        Naming a few of the other things the folder holds.
    """
    folder = target.file
    if target.format != "folder" or not folder.is_dir() or folder.is_symlink():
        return
    others = sorted(e.name + ("/" if e.is_dir() else "") for e in folder.iterdir()
                    if not (e.is_file() and (e.name == SECTIONS_JSON or (
                        e.suffix.lower() in SECTION_SUFFIXES and not e.name.startswith(".")))))
    if others:
        shown = ", ".join(repr(n) for n in others[:3]) + (", ..." if len(others) > 3 else "")
        raise ValueError(
            f"refusing to replace the folder {str(folder)!r}: it holds more than section images "
            f"({shown}), and --overwrite replaces the whole folder. Choose another folder, or "
            "empty this one first.")


def check_output_path(path, *, protect: Iterable = (), overwrite: bool = False,
                      dtype=None) -> Path:
    """Check that a stack may be written to ``path``; return the file or folder it writes
    (an HDF5 file without its ``:/dataset``, a folder without its ``*.png``).

    Parameters
    ----------
    path : str or Path
        The destination (see the module docstring: ``.tif``, ``.zarr``, ``.ome.zarr``, ``.h5``,
        ``.mrc``, ``out/``...).
    protect : iterable of paths, keyword-only
        Stacks that must never be overwritten, typically the inputs (their files: an HDF5
        file whatever its dataset).
    overwrite : bool, keyword-only
        Allow replacing an existing ``path`` (a folder of sections only when it holds
        nothing else).
    dtype : dtype, optional, keyword-only
        What will be written: refused when the format cannot hold it.

    Raises
    ------
    ValueError
        If ``path`` is (or is inside, or contains) a protected path, or has an unsupported
        extension, or is a folder to replace that holds more than sections.
    TypeError
        If the format cannot hold ``dtype``.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If the folder that should hold ``path`` does not exist.
    """
    target = output_target(path)
    if dtype is not None:
        check_writable(target, dtype)
    try:
        dest = files.check_output_path(
            target.file, protect=[None if p is None or is_url(split_format(p)[1])
                                  else stack_file(p) for p in protect],
            overwrite=overwrite)
    except FileExistsError as exc:
        if target.format != "hdf5":
            raise
        raise FileExistsError(f"{exc} An HDF5 output is a file of its own: a dataset is never "
                              "added to a file that exists.") from None
    if overwrite:
        check_replaceable(target)
    return dest
