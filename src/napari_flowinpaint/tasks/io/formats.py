"""The vEM formats read besides TIFF and zarr: a folder of sections, HDF5, MRC, N5 and
Neuroglancer precomputed, each lazily.

:func:`~napari_flowinpaint.tasks.io.read_stack` and
:func:`~napari_flowinpaint.tasks.io.read_voxel_size` hand these formats to this module:

* ``"folder"``: a folder of one image per section (TIFF or PNG, the usual export of ATUM and
  ssTEM pipelines), sections in natural order of the file names (``2.tif`` before
  ``10.tif``); a section is read when it is indexed (:class:`.sections.SectionFiles`).
  Every image must have the size and type of the first. Voxel size from the folder's
  ``stack.json`` (written with a folder output) or the first TIFF's ImageJ metadata.
* ``"hdf5"`` (``.h5``, ``.hdf5``, ``.hdf``; :mod:`h5py`): ``file.h5:/volumes/raw`` names the
  dataset inside the file; without it, the file's only 3-D dataset. Voxel size from the
  dataset's ``resolution`` attribute (nm, z first, as CREMI writes it) or
  ``element_size_um`` (µm, z first, as ilastik and Fiji write it).
* ``"mrc"`` (``.mrc``, ``.mrcs``, ``.map`` and IMOD's ``.st``, ``.ali``, ``.rec``;
  :mod:`mrcfile`): memory-mapped. Voxel size from the header (Å, converted to nm). Mode 0
  (bytes) is read as uint8 when IMOD wrote the file without its "signed bytes" flag, as IMOD
  means it, else as int8.
* ``"n5"`` and ``"precomputed"``: through tensorstore, an optional extra
  (:mod:`.tensorstores`); these and zarr also by URL (``https://``, ``gs://``, ``s3://``;
  :mod:`.remote`).

A chunk never written, or lost, of a chunked HDF5 dataset or N5 image is an error naming
its section, not a blank section (:mod:`.chunks`); masks (``sparse``) read it as the fill
value.

A path's format comes from its extension, or from an explicit prefix ``FORMAT:PATH``
(:func:`with_format`, what ``--format`` of the command line builds) for a file whose
extension says nothing (``hdf5:scan.bin:/raw``). Each reader is a :class:`FormatStack`:
shape, dtype, ndim and numpy indexing that reads only what is asked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .chunks import Hdf5Chunks, MissingSection
from .remote import is_url, url_format

__all__ = ["FORMATS", "READABLE", "FormatStack", "absolute_source", "for_cluster",
           "format_voxel_size",
           "hdf5_datasets",
           "hdf5_parts", "lazy_format", "open_format", "resolved_source", "split_format",
           "tiff_zarr", "with_format"]

#: What :func:`~napari_flowinpaint.tasks.io.stack_format` adds, for reading, to its list.
READABLE = ("; for reading also a folder of .tif or .png sections, HDF5 (.h5/.hdf5/.hdf, as "
            "'file.h5:/dataset'), MRC (.mrc/.mrcs/.map/.st/.ali/.rec), N5 (.n5) and "
            "Neuroglancer precomputed (a folder with an 'info' file), and N5, precomputed and "
            "zarr by URL (https://, gs://, s3://); name the format an extension hides with "
            "--format (a path 'FORMAT:PATH')")

#: Every format name :func:`~napari_flowinpaint.tasks.io.read_stack` knows (``--format``).
FORMATS = ("tiff", "zarr", "folder", "hdf5", "mrc", "n5", "precomputed")

_MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".st", ".ali", ".rec")
_HDF5_PATH = re.compile(r"^(.*?\.(?:h5|hdf5|hdf))(?::(.*))?$", re.IGNORECASE)
_IMOD_STAMP = 1146047817  # "IMOD": the header was written by IMOD (or SerialEM)


def split_format(path) -> tuple[str | None, str]:
    """``(FORMAT, PATH)`` of an explicit ``FORMAT:PATH`` (or Neuroglancer's ``FORMAT://URL``);
    ``(None, path)`` for a plain path."""
    text = str(path)
    head, sep, rest = text.partition(":")
    if sep and head.lower() in FORMATS and rest and not Path(text).exists():
        return head.lower(), rest[2:] if rest.startswith("//") and is_url(rest[2:]) else rest
    return None, text


def with_format(path, fmt: str | None) -> str:
    """``path`` read as format ``fmt`` (one of :data:`FORMATS`): ``"FORMAT:PATH"``, or
    ``path`` itself when ``fmt`` is None or what its extension says anyway (so that the path
    stays a plain path, which outputs are checked against).

    Raises
    ------
    ValueError
        For an unknown ``fmt``.
    """
    if fmt is None:
        return str(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    from .stacks import stack_format

    try:
        same = stack_format(path) == fmt
    except ValueError:
        same = False
    return str(path) if same else f"{fmt}:{path}"


def absolute_source(path) -> str:
    """``path``, a stack to read, with its file made absolute (relative to the current
    folder), what a cluster's workers need: they run in folders of their own. An explicit
    ``FORMAT:`` prefix and an HDF5 file's ``:/dataset`` are kept; a URL is kept as it is."""
    fmt, text = split_format(path)
    if is_url(text):
        pass
    elif fmt == "hdf5" or (fmt is None and _HDF5_PATH.match(text)):
        file, inner = hdf5_parts(text)
        text = str(file.absolute()) + (f":/{inner}" if inner else "")
    else:  # an output's trailing "/" (a folder of sections) is kept
        text = str(Path(text).absolute()) + ("/" if text.endswith("/") else "")
    return text if fmt is None else f"{fmt}:{text}"


def resolved_source(path) -> str:
    """What a journal records of a stack read (the input, the mask): its file's path with
    symbolic links resolved, or a URL as it is (with its ``FORMAT:``, if any)."""
    text = split_format(path)[1]
    return str(path) if is_url(text) else str(Path(path).resolve())


def for_cluster(*paths) -> tuple:
    """``paths`` with each file path (str or path-like) made absolute by
    :func:`absolute_source` and anything else (None, arrays, weights objects) as it is: what
    a dask cluster's workers need, since they run in folders of their own, where a relative
    path names nothing."""
    return tuple(absolute_source(os.fspath(p)) if isinstance(p, (str, os.PathLike)) else p
                 for p in paths)


def lazy_format(path) -> str | None:
    """The format of ``path`` (a plain path) among those of this module, from its extension
    (or, for a folder, from being a folder; for a URL, from a ``.n5`` or ``.zarr`` in it);
    None for any other."""
    text = str(path)
    if is_url(text):
        return url_format(text)
    if _HDF5_PATH.match(text):
        return "hdf5"
    p = Path(text)
    if p.suffix.lower() in _MRC_SUFFIXES:
        return "mrc"
    if any(part.lower().endswith(".n5") for part in p.parts):
        return "n5"
    if p.is_dir() and not p.suffix.lower() == ".zarr":
        from .tensorstores import is_precomputed

        return "precomputed" if is_precomputed(p) else "folder"
    return None


def open_format(path, fmt: str, name: str = "stack", *, sparse: bool = False) -> FormatStack:
    """The stack at ``path`` in format ``fmt`` (``"folder"``, ``"hdf5"``, ``"mrc"``, ``"n5"``
    or ``"precomputed"``; a URL: ``"n5"``, ``"precomputed"`` or ``"zarr"``), read lazily.
    ``sparse`` (a mask): an HDF5 or N5 chunk never written reads as the fill value; else
    reading its section raises :class:`~.chunks.MissingSection`.

    Raises
    ------
    FileNotFoundError
        If the file or folder does not exist.
    ValueError
        If it cannot be read as ``fmt``, or (HDF5, N5) the dataset is missing or not named
        where the file holds several (the message lists them).
    ImportError
        For N5 and precomputed without tensorstore (the message names the extra).
    """
    if is_url(str(path)):
        from .remote import open_url

        return open_url(str(path), fmt, name, sparse=sparse)
    file, _ = hdf5_parts(path) if fmt == "hdf5" else (Path(str(path)), None)
    if not file.exists():
        raise FileNotFoundError(f"{name} {str(file)!r} does not exist.")
    from .sections import SectionFiles
    from .stacks import check_3d

    if fmt == "folder":
        stack = SectionFiles(file, name=name)
    elif fmt == "hdf5":
        stack = _Hdf5Stack(_hdf5_dataset(path, name), path, name, sparse=sparse)
    elif fmt == "mrc":
        stack = _MrcStack(file, name)
    elif fmt in ("n5", "precomputed"):
        from .tensorstores import open_tensorstore

        stack = open_tensorstore(file, fmt, name, sparse=sparse)
    else:
        raise ValueError(f"{name} {str(path)!r}: no lazy reader for the format {fmt!r}.")
    check_3d(stack.shape, path, name)
    return stack


def tiff_zarr(path):
    """A (Big)TIFF as a zarr array that reads a page (or strip, or tile) when indexed, through
    tifffile's zarr store; its highest-resolution level."""
    import tifffile
    import zarr

    return zarr.open(tifffile.imread(path, aszarr=True, level=0), mode="r")


def format_voxel_size(path, fmt: str) -> tuple[float, float, float] | None:
    """Voxel size ``(z, y, x)`` in nm from the file's own metadata, or None (see the module
    docstring for where each format keeps it)."""
    if is_url(str(path)):
        from .remote import url_voxel_size

        return url_voxel_size(str(path), fmt)
    if fmt == "hdf5":
        attrs = _hdf5_dataset(path, "stack").attrs
        for key, factor in (("resolution", 1.0), ("element_size_um", 1000.0)):
            value = attrs.get(key)
            if value is not None and np.size(value) == 3 and np.all(np.asarray(value) > 0):
                return tuple(float(v) * factor for v in np.ravel(value))
        return None
    if fmt in ("n5", "precomputed"):
        from .tensorstores import tensorstore_voxel_size

        return tensorstore_voxel_size(path, fmt)
    if fmt == "folder":
        from .sections import folder_voxel_size

        return folder_voxel_size(path)
    if fmt == "mrc":
        import mrcfile

        with mrcfile.mmap(str(path), mode="r", permissive=True) as mrc:
            vs = mrc.voxel_size
            zyx = (float(vs.z), float(vs.y), float(vs.x))
        return tuple(v / 10.0 for v in zyx) if all(v > 0 for v in zyx) else None
    return None


class FormatStack:
    """A stack in a file (or folder) read one piece at a time: ``stack[z]``,
    ``stack[z0:z1, y0:y1, x0:x1]`` return numpy arrays of only what is asked;
    ``np.asarray(stack)`` reads it all. A read that fails raises :class:`ValueError` naming
    the file and the index.

    Attributes
    ----------
    path : Path or str
        The file, or the URL (:mod:`.remote`).
    name : str
        How the stack is called in error messages.
    shape, dtype, ndim
    """

    def __init__(self, path, name: str, shape, dtype):
        self.path = str(path) if is_url(str(path)) else Path(str(path))
        self.name = name
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        self.ndim = len(self.shape)

    def _read(self, key) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        try:
            return self._read(key)
        except (IndexError, MissingSection):
            raise
        except Exception as exc:  # each library raises its own kinds
            where = f"section {key}" if isinstance(key, int | np.integer) else f"[{key!r}]"
            raise ValueError(
                f"{self.name} {str(self.path)!r}: could not read {where} "
                f"({type(exc).__name__}: {exc}); the file may be corrupt or truncated."
            ) from exc

    def __array__(self, dtype=None, copy=None):
        out = self[...]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, shape={self.shape}, "
                f"dtype={self.dtype})")


def hdf5_parts(path) -> tuple[Path, str]:
    """(file, dataset path inside it) of ``file.h5:/volumes/raw`` (or of a file with another
    extension, as given with ``hdf5:``: the dataset after the last ``:`` whose left side is
    a file)."""
    text = str(path)
    m = _HDF5_PATH.match(text)
    if m:
        return Path(m.group(1)), (m.group(2) or "").strip("/")
    for i in [i for i, c in enumerate(text) if c == ":"][::-1]:
        if Path(text[:i]).is_file():
            return Path(text[:i]), text[i + 1:].strip("/")
    return Path(text), ""


def hdf5_datasets(path) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """Every dataset of the HDF5 file at ``path`` (below its dataset path, if given) as
    ``(path inside the file, shape, dtype)``, in the file's order."""
    import h5py

    file, inner = hdf5_parts(path)
    with h5py.File(file, "r") as f:
        node = f[inner] if inner else f
        if isinstance(node, h5py.Dataset):
            return [("/" + inner, tuple(node.shape), node.dtype)]
        found = []
        node.visititems(lambda key, obj: found.append(
            (f"{node.name.rstrip('/')}/{key}", tuple(obj.shape), obj.dtype))
            if isinstance(obj, h5py.Dataset) else None)
        return found


def _hdf5_dataset(path, name: str):
    """The h5py dataset a path names (the file stays open as long as the dataset is used)."""
    import h5py

    file, inner = hdf5_parts(path)
    try:
        f = h5py.File(file, "r")
    except OSError as exc:
        raise ValueError(f"{name} {str(file)!r} could not be opened as an HDF5 file "
                         f"({exc}).") from exc

    def listing(datasets) -> str:
        return "; ".join(f"{p} {'x'.join(map(str, s)) or 'scalar'} {d}" for p, s, d in datasets)

    if inner and inner not in f:
        everything = hdf5_datasets(file)
        raise ValueError(f"{name} {str(file)!r} holds no dataset {'/' + inner!r}; it holds: "
                         f"{listing(everything) or 'no dataset at all'}.")
    node = f[inner] if inner else f
    if isinstance(node, h5py.Dataset):
        return node
    datasets = hdf5_datasets(f"{file}:/{inner}")
    volumes = [d for d in datasets if len(d[1]) == 3]
    if len(volumes) == 1:
        return f[volumes[0][0]]
    where = f"{str(file)!r}" + (f" (group {'/' + inner!r})" if inner else "")
    if not volumes:
        raise ValueError(f"{name} {where} holds no 3-D dataset; it holds: "
                         f"{listing(datasets) or 'no dataset at all'}.")
    raise ValueError(
        f"{name} {where} holds several 3-D datasets: {listing(volumes)}. Name the one to "
        f"use after the file, e.g. '{file}:{volumes[0][0]}'.")


class _Hdf5Stack(FormatStack):
    """An HDF5 dataset (h5py reads only the chunks an index touches); unless ``sparse``, a
    section with a chunk never written raises :class:`~.chunks.MissingSection`."""

    def __init__(self, dataset, path, name: str, *, sparse: bool = False):
        super().__init__(path, name, dataset.shape, dataset.dtype)
        self.dataset = dataset
        self.chunks = None if sparse else Hdf5Chunks(dataset, name, self.path)

    def _read(self, key):
        if self.chunks is not None:
            self.chunks.check(key)
        return np.asarray(self.dataset[key])


class _MrcStack(FormatStack):
    """An MRC file's data, memory-mapped: indexing reads (and copies) only what is asked."""

    def __init__(self, file: Path, name: str):
        import mrcfile

        try:
            self.mrc = mrcfile.mmap(str(file), mode="r", permissive=True)
        except Exception as exc:  # mrcfile raises ValueError, OSError, struct errors
            raise ValueError(f"{name} {str(file)!r} could not be read as an MRC file "
                             f"({exc}).") from exc
        data = self.mrc.data
        if data is None:
            raise ValueError(f"{name} {str(file)!r} could not be read as an MRC file (its "
                             "header is not valid, or the data are cut short).")
        if data.dtype == np.int8 and _imod_unsigned(self.mrc.header):
            data = data.view(np.uint8)
        self.data = data
        super().__init__(file, name, data.shape, data.dtype)

    def _read(self, key):
        return np.array(self.data[key])  # a copy: the map is read-only


def _imod_unsigned(header) -> bool:
    """Whether an MRC mode-0 file holds unsigned bytes: IMOD's stamp without its "signed"
    flag (``imodStamp``, ``imodFlags`` at bytes 152 and 156 of the header)."""
    raw = header.tobytes()
    order = ">" if header.dtype.fields["nx"][0].byteorder == ">" else "<"
    stamp, flags = np.frombuffer(raw, dtype=f"{order}i4", count=2, offset=152)
    return int(stamp) == _IMOD_STAMP and not int(flags) & 1
