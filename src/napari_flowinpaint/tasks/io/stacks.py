"""Reading image stacks (TIFF and zarr) and their voxel size.

Supported formats, chosen by the file extension:

* ``.tif`` / ``.tiff``: a multi-page TIFF read into memory with :mod:`tifffile` (a big one
  a page at a time; pages written one by one form the stack too: :mod:`.tiffpages`).
* a folder of ``.tif``/``.png`` sections, HDF5 (``file.h5:/volumes/raw``), MRC, N5,
  Neuroglancer precomputed, or a format named by a prefix (``hdf5:scan.bin:/raw``): read
  lazily by :mod:`.formats`; N5, precomputed and zarr also by URL (:mod:`.remote`).
* ``.zarr``: a zarr store directory (format 2 or 3) holding the array at its root, or a group
  holding exactly one array (or give the array's path inside the store, ``data.zarr/raw``),
  or an OME-Zarr image (OME-NGFF 0.4 or 0.5: its highest-resolution level, voxel size from
  its metadata; :mod:`.ome`).
  It is read *lazily*: the zarr array is returned and slices are only read when indexed, so
  stacks larger than memory work.

Writing is :mod:`napari_flowinpaint.tasks.io.writer`.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from ._logs import quiet_logger
from .chunks import key_sections, missing_section
from .formats import READABLE, format_voxel_size, lazy_format, open_format, split_format, tiff_zarr
from .ome import is_ome_zarr, open_ome_zarr
from .remote import is_url, url_format_told
from .targets import check_output_path, output_target
from .tiffpages import PagesDiffer, check_complete, page_stack

__all__ = ["SMALL_BYTES", "SUPPORTED_EXTENSIONS", "LazyStack", "SectionRange", "stack_format",
           "read_stack", "read_voxel_size", "check_3d", "check_output_path", "load_if_small",
           "stack_nbytes"]

#: A lazy stack (zarr, dask) up to this many bytes is read into memory where random access
#: is the work (training draws crops anywhere); a bigger one is read a crop at a time.
SMALL_BYTES = 1 << 30

#: File extensions of the stacks of one file (TIFF) or one store (zarr), read and written
#: (for every other format see :mod:`.formats` and :mod:`.targets`).
SUPPORTED_EXTENSIONS = (".tif", ".tiff", ".zarr")

_UNIT_TO_NM = {"nm": 1.0, "nanometer": 1.0, "micron": 1000.0, "um": 1000.0, "\u00b5m": 1000.0,
               "\\u00B5m": 1000.0, "mm": 1e6}


def stack_format(path, *, for_writing: bool = False) -> str:
    """The format of the stack at ``path``, from its extension: ``"tiff"`` or ``"zarr"``,
    for reading also those of :mod:`.formats` (a folder, HDF5, MRC, N5, precomputed), for
    writing those of :mod:`.targets` (HDF5, MRC, a folder: ``out/``, ``out/*.png``).

    For reading, a path *inside* a ``.zarr`` store (``data.zarr/raw``) also counts as zarr.

    Raises
    ------
    ValueError
        For any other extension.
    """
    if for_writing:
        return output_target(path).format
    if is_url(str(path)):  # n5 or zarr in the URL, else say it
        return url_format_told(str(path))
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return "tiff"
    if suffix == ".zarr":
        return "zarr"
    if any(part.lower().endswith(".zarr") for part in p.parts[:-1]):
        return "zarr"
    if lazy_format(path) is not None:  # a folder, HDF5, MRC: .formats
        return lazy_format(path)
    raise ValueError(
        f"cannot tell the format of {str(path)!r} from its extension {suffix or '(none)'!r}; "
        f"supported: {', '.join(SUPPORTED_EXTENSIONS)} (a multi-page TIFF or a zarr store)"
        f"{READABLE}. "
        "Convert other formats first, e.g. with Fiji (File > Save As > Tiff)."
    )


class _NotGreyscale(Exception):
    """A TIFF whose pixels hold several samples (RGB)."""


def check_3d(shape, path, name) -> None:
    if len(shape) != 3:
        hint = ("a single 2-D image has no neighbouring sections to repair from"
                if len(shape) == 2 else
                "for RGB data convert to greyscale; for multichannel or time-lapse data save "
                "one channel / time point as its own stack")
        raise ValueError(
            f"{name} {str(path)!r} holds an array of shape {tuple(shape)}; expected a 3-D "
            f"stack of sections with axes (z, y, x): {hint}."
        )
    if 0 in tuple(shape):
        raise ValueError(f"{name} {str(path)!r} holds an array of shape {tuple(shape)}: an axis "
                         "of size 0, so there is no data in it.")


def open_zarr(path: Path, name: str):
    import zarr

    try:
        node = zarr.open(store=str(path), mode="r")
    except Exception as exc:  # zarr raises several kinds for "not a store"
        raise ValueError(
            f"{name} {str(path)!r} could not be opened as a zarr store ({exc}). Expected a "
            "zarr directory holding one 3-D array."
        ) from exc
    if isinstance(node, zarr.Array):
        return node
    arrays = sorted(node.arrays(), key=lambda kv: kv[0])
    if len(arrays) == 1:
        return arrays[0][1]
    if not arrays:
        raise ValueError(f"{name} zarr store {str(path)!r} holds no array at its top level.")
    names = ", ".join(k for k, _ in arrays)
    raise ValueError(
        f"{name} zarr store {str(path)!r} holds several arrays ({names}); give the one to use "
        f"as a path inside the store, e.g. {str(path / arrays[0][0])!r}."
    )


class LazyStack:
    """A stack on disk (a zarr array) read one piece at a time, whose read errors say which
    file and which sections failed.

    Indexing (``stack[z]``, ``stack[z, y0:y1, x0:x1]``) reads and returns numpy arrays;
    ``np.asarray(stack)`` reads it all. A corrupt or truncated chunk raises
    :class:`ValueError` naming the file and the index, not the codec's own error; so does a
    section with a chunk missing from the store (zarr reads a missing chunk as the fill
    value: a deleted chunk would be a black section taken for data), unless ``sparse``.

    Attributes
    ----------
    array : zarr.Array
        The array read.
    path : Path
    sparse : bool
        Missing chunks read as the fill value (a mask: zarr does not store empty chunks).
    shape, dtype, ndim
    """

    def __init__(self, array, path, name: str = "stack", *, index: tuple = (),
                 sparse: bool = False):
        self.array, self.path, self.name, self.sparse = array, Path(path), name, sparse
        self.index = tuple(index)  # fixed leading indices (an OME-Zarr's channel, time)
        self.shape = tuple(array.shape)[len(self.index):]
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self._stored: set[int] = set()  # sections whose chunks were all found

    def __len__(self) -> int:
        return self.shape[0]

    def _check_stored(self, key) -> None:
        """Raise :class:`~.chunks.MissingSection` when a section that ``key`` reads has a
        chunk missing from the store (each section is checked once)."""
        from zarr.core.sync import sync

        chunks = self.array.shards or self.array.chunks
        lead = [(i // c,) for i, c in zip(self.index, chunks, strict=False)]
        rest = [range(-(-size // c)) for size, c in zip(self.shape[1:], chunks[-2:],
                                                         strict=True)]
        for z in key_sections(key, self.shape[0]):
            if z in self._stored:
                continue
            coords = itertools.product(*lead, (z // chunks[len(self.index)],), *rest)
            keys = [self.array.metadata.encode_chunk_key(c) for c in coords]
            missing = [k for k in keys if not sync((self.array.store_path / k).exists())]
            if missing:
                raise missing_section(
                    self.name, self.path, z, missing, reader="zarr",
                    fill=self.array.fill_value, hint="; if the section is blank on purpose, "
                    "write it out (zarr's write_empty_chunks=True)")
            self._stored.add(z)

    def __getitem__(self, key):
        if not self.sparse:
            self._check_stored(key)
        try:
            if self.index:
                key = self.index + (key if isinstance(key, tuple) else (key,))
            return np.asarray(self.array[key])
        except Exception as exc:  # zarr and its codecs raise many kinds
            where = f"section {key}" if isinstance(key, int | np.integer) else f"[{key!r}]"
            raise ValueError(
                f"{self.name} {str(self.path)!r}: could not read {where} "
                f"({type(exc).__name__}: {exc}); the store may be corrupt or truncated."
            ) from exc

    def __array__(self, dtype=None, copy=None):
        out = self[...]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"LazyStack({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"


def stack_nbytes(data) -> int:
    """The bytes ``data`` would take in memory, from its shape and dtype (nothing is read)."""
    return int(np.prod(tuple(data.shape), dtype=np.int64)) * np.dtype(data.dtype).itemsize


def load_if_small(stack, *, limit: int | None = None):
    """``stack`` as a numpy array when it is one already or takes at most ``limit`` bytes
    (default :data:`SMALL_BYTES`); otherwise ``stack`` itself, lazy, to be indexed a section
    or a crop at a time. Big data stay on disk: nothing reads a big stack whole."""
    if isinstance(stack, np.ndarray):
        return stack
    if not hasattr(stack, "shape") or not hasattr(stack, "dtype"):
        return np.asarray(stack)  # a list of sections, or the like
    limit = SMALL_BYTES if limit is None else int(limit)
    return np.asarray(stack[:]) if stack_nbytes(stack) <= limit else stack


class SectionRange:
    """Sections ``start, start + step, ...`` below ``stop`` of a stack, read only when
    indexed: what ``stack[start:stop:step]`` is for numpy, without reading a lazy stack's
    whole range.

    ``view[i]`` and ``view[i, ...]`` read section ``start + i * step`` (a negative ``i``
    counts from the end); ``shape`` and ``len`` are the range's.
    """

    def __init__(self, stack, start: int, stop: int, step: int = 1):
        n = int(stack.shape[0])
        if int(step) < 1:
            raise ValueError(f"step must be at least 1, got {step}.")
        self.stack, self.start, self.stop = stack, max(0, int(start)), min(n, int(stop))
        self.step = int(step)
        self.shape = (len(range(self.start, self.stop, self.step)), *tuple(stack.shape)[1:])
        self.dtype, self.ndim = np.dtype(stack.dtype), len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if not isinstance(first, int | np.integer):
            raise TypeError(f"index a SectionRange by section (an int first), got {key!r}.")
        i = int(first) + (self.shape[0] if first < 0 else 0)
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"section {first} is outside the range of {self.shape[0]}.")
        return np.asarray(self.stack[(self.start + i * self.step, *rest)])


def read_stack(path, *, name: str = "stack", sparse: bool = False):
    """Read a 3-D image stack (or mask stack) with axes (z, y, x).

    Parameters
    ----------
    path : str or Path
        A TIFF, zarr, folder of sections, HDF5, MRC, N5 or precomputed stack (see the module
        docstring), or an N5, precomputed or zarr volume by URL (a str: ``https://``,
        ``gs://``, ``s3://``; :mod:`.remote`).
    name : str, keyword-only
        How the file is called in error messages (e.g. ``"mask"``).
    sparse : bool, keyword-only
        For zarr, N5 and HDF5: a chunk missing from the store reads as the array's fill
        value, as zarr stores masks (empty chunks are not written). Default False: reading
        a section with a missing chunk raises :class:`ValueError` (a deleted chunk of an
        image is never taken for a black section; :mod:`.chunks`).

    Returns
    -------
    numpy.ndarray or LazyStack
        TIFF: an in-memory ndarray. zarr: a :class:`LazyStack` over the zarr array (index
        it, e.g. ``stack[z]``, to read a section; ``np.asarray(stack)`` loads it all).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        For an unsupported extension, an unreadable file, or data that is not 3-D.
    """
    fmt, path = split_format(path)
    if is_url(path):  # N5, precomputed, zarr by URL: .remote
        return open_format(path, fmt or stack_format(path), name, sparse=sparse)
    path = Path(path)
    fmt = fmt or stack_format(path)
    if fmt not in ("tiff", "zarr"):  # a folder of sections, HDF5, MRC: .formats
        return open_format(path, fmt, name, sparse=sparse)
    if not path.exists():
        raise FileNotFoundError(f"{name} {str(path)!r} does not exist.")
    if fmt == "zarr" and is_ome_zarr(path):
        array, index, _ = open_ome_zarr(path, name)
        arr = LazyStack(array, path, name, index=index, sparse=sparse)
    elif fmt == "zarr":
        arr = LazyStack(open_zarr(path, name), path, name, sparse=sparse)
    else:
        import tifffile

        if path.is_dir():
            raise ValueError(f"{name} {str(path)!r} is a folder, expected a TIFF file.")
        try:
            with quiet_logger("tifffile"), tifffile.TiffFile(path) as tif:
                axes = tif.series[0].axes if tif.series else ""
                if "S" in axes:  # samples per pixel: RGB(A) or interleaved channels
                    raise _NotGreyscale(axes, tif.series[0].shape)
                check_complete(tif, path.stat().st_size)
                arr = page_stack(tif, path, name, small=SMALL_BYTES)  # written page by page
                if arr is None:
                    big = stack_nbytes(tif.series[0]) > SMALL_BYTES  # then read a page at a time
                    arr = LazyStack(tiff_zarr(path), path, name) if big else tif.asarray()
        except PagesDiffer:
            raise
        except _NotGreyscale as exc:
            raise ValueError(
                f"{name} {str(path)!r} is an RGB or multichannel TIFF (axes {exc.args[0]}, "
                f"shape {tuple(exc.args[1])}); expected grey-level sections (z, y, x). Convert "
                "it to greyscale first (Fiji: Image > Type > 8-bit)."
            ) from None
        except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct errors
            raise ValueError(f"{name} {str(path)!r} could not be read as a TIFF: {exc}") from exc
    check_3d(arr.shape, path, name)
    return arr


def read_voxel_size(path) -> tuple[float, float, float] | None:
    """Voxel size ``(z, y, x)`` in nanometres stored with a stack, or None if unknown.

    TIFF: ImageJ ``spacing``/``unit`` and the X/YResolution tags. OME-Zarr: the scale of
    the highest-resolution level. zarr: the ``voxel_size`` attribute written by
    :func:`~napari_flowinpaint.tasks.io.write_stack`.
    """
    fmt, path = split_format(path)
    fmt = fmt or stack_format(path)
    if is_url(path):
        return format_voxel_size(path, fmt)
    path = Path(path)
    if fmt not in ("tiff", "zarr"):
        return format_voxel_size(path, fmt)
    if fmt == "zarr" and is_ome_zarr(path):
        return open_ome_zarr(path)[2]
    if fmt == "zarr":
        try:
            vs = open_zarr(path, "stack").attrs.get("voxel_size")
        except ValueError:
            return None
        return tuple(float(v) for v in vs) if vs is not None and len(vs) == 3 else None
    import tifffile

    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata or {}
        page = tif.pages[0]
        unit = str(meta.get("unit", "")).strip()
        factor = _UNIT_TO_NM.get(unit, _UNIT_TO_NM.get(unit.lower()))
        if factor is None or "spacing" not in meta:
            return None
        sizes = []
        for tag in ("YResolution", "XResolution"):
            t = page.tags.get(tag)
            if t is None:
                return None
            num, den = t.value
            if num == 0:
                return None
            sizes.append(den / num * factor)
        return (float(meta["spacing"]) * factor, sizes[0], sizes[1])
