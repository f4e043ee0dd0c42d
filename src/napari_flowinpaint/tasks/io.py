"""Reading and writing image stacks (TIFF and zarr), with atomic writes.

Supported formats, chosen by the file extension:

* ``.tif`` / ``.tiff``: a multi-page TIFF read into memory with :mod:`tifffile`. Written as an
  ImageJ hyperstack (axes z, y, x, voxel size kept) for uint8, uint16 and float32 data that
  fits in 4 GB, otherwise as a plain (Big)TIFF.
* ``.zarr``: a zarr store directory (format 2 or 3) holding the array at its root, or a group
  holding exactly one array (or give the array's path inside the store, ``data.zarr/raw``).
  It is read *lazily*: the zarr array is returned and slices are only read when indexed, so
  stacks larger than memory work. Written as a zarr format 3 array at the store root.

Writes are atomic: the data go to a hidden temporary sibling of the destination (same folder,
so the final step is a rename on one file system) that is moved into place only once complete.
If anything fails or the user presses Ctrl-C, the temporary is removed and the destination is
left as it was: never a half-written output. (A process killed with SIGKILL cannot clean up:
it may leave a hidden ``.NAME-XXXX.partial.EXT`` beside the destination, safe to delete.)
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

__all__ = ["SUPPORTED_EXTENSIONS", "stack_format", "read_stack", "read_voxel_size",
           "write_stack", "StackWriter", "check_output_path"]

#: File extensions understood by :func:`read_stack` and :func:`write_stack`.
SUPPORTED_EXTENSIONS = (".tif", ".tiff", ".zarr")

_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
_TIFF_LIMIT = 2**32 - 2**25  # bytes of pixel data above which a BigTIFF is needed
_UNIT_TO_NM = {"nm": 1.0, "nanometer": 1.0, "micron": 1000.0, "um": 1000.0, "\u00b5m": 1000.0,
               "\\u00B5m": 1000.0, "mm": 1e6}


def stack_format(path, *, for_writing: bool = False) -> str:
    """``"tiff"`` or ``"zarr"``, from the extension of ``path``.

    For reading, a path *inside* a ``.zarr`` store (``data.zarr/raw``) also counts as zarr.

    Raises
    ------
    ValueError
        For any other extension.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return "tiff"
    if suffix == ".zarr":
        return "zarr"
    if not for_writing and any(part.lower().endswith(".zarr") for part in p.parts[:-1]):
        return "zarr"
    raise ValueError(
        f"cannot tell the format of {str(path)!r} from its extension {suffix or '(none)'!r}; "
        f"supported: {', '.join(SUPPORTED_EXTENSIONS)} (a multi-page TIFF or a zarr store). "
        "Convert other formats first, e.g. with Fiji (File > Save As > Tiff)."
    )


def _check_3d(shape, path, name) -> None:
    if len(shape) != 3:
        hint = ("a single 2-D image has no neighbouring sections to repair from"
                if len(shape) == 2 else
                "for RGB data convert to greyscale; for multichannel or time-lapse data save "
                "one channel / time point as its own stack")
        raise ValueError(
            f"{name} {str(path)!r} holds an array of shape {tuple(shape)}; expected a 3-D "
            f"stack of sections with axes (z, y, x): {hint}."
        )


def _open_zarr(path: Path, name: str):
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


def read_stack(path, *, name: str = "stack"):
    """Read a 3-D image stack (or mask stack) with axes (z, y, x).

    Parameters
    ----------
    path : str or Path
        A ``.tif``/``.tiff`` file or a ``.zarr`` store (see the module docstring).
    name : str, keyword-only
        How the file is called in error messages (e.g. ``"mask"``).

    Returns
    -------
    numpy.ndarray or zarr.Array
        TIFF: an in-memory ndarray. zarr: the lazily read zarr array (index it, e.g.
        ``stack[z]``, to read a section; ``np.asarray(stack)`` loads it all).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        For an unsupported extension, an unreadable file, or data that is not 3-D.
    """
    path = Path(path)
    fmt = stack_format(path)
    if not path.exists():
        raise FileNotFoundError(f"{name} {str(path)!r} does not exist.")
    if fmt == "zarr":
        arr = _open_zarr(path, name)
    else:
        import tifffile

        if path.is_dir():
            raise ValueError(f"{name} {str(path)!r} is a folder, expected a TIFF file.")
        try:
            arr = tifffile.imread(path)
        except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct errors
            raise ValueError(f"{name} {str(path)!r} could not be read as a TIFF: {exc}") from exc
    _check_3d(arr.shape, path, name)
    return arr


def read_voxel_size(path) -> tuple[float, float, float] | None:
    """Voxel size ``(z, y, x)`` in nanometres stored with a stack, or None if unknown.

    TIFF: ImageJ ``spacing``/``unit`` and the X/YResolution tags. zarr: the ``voxel_size``
    attribute written by :func:`write_stack`.
    """
    path = Path(path)
    if stack_format(path) == "zarr":
        try:
            vs = _open_zarr(path, "stack").attrs.get("voxel_size")
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


def _same_or_nested(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    if a == b or a in b.parents or b in a.parents:
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path, *, protect: Iterable = (), overwrite: bool = False) -> Path:
    """Check that a stack may be written to ``path``; return it as a Path.

    Parameters
    ----------
    path : str or Path
        The destination (``.tif``, ``.tiff`` or ``.zarr``).
    protect : iterable of paths, keyword-only
        Paths that must never be overwritten, typically the inputs.
    overwrite : bool, keyword-only
        Allow replacing an existing ``path``.

    Raises
    ------
    ValueError
        If ``path`` is (or is inside, or contains) a protected path, or has an unsupported
        extension.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If the folder that should hold ``path`` does not exist.
    """
    path = Path(path)
    stack_format(path, for_writing=True)
    for p in protect:
        if p is not None and _same_or_nested(path, Path(p)):
            raise ValueError(
                f"refusing to write the output onto the input {str(p)!r}: the original data "
                "are never modified. Choose another output path."
            )
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(
            f"the output {str(path)!r} already exists; pass overwrite=True (--overwrite on "
            "the command line) to replace it, or choose another path."
        )
    if not path.resolve().parent.is_dir():
        raise FileNotFoundError(
            f"the folder {str(path.resolve().parent)!r} for the output does not exist; "
            "create it first."
        )
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _hidden_sibling(path: Path, tag: str) -> Path:
    token = secrets.token_hex(4)
    return path.parent / f".{path.stem}-{token}.{tag}{path.suffix}"


class StackWriter:
    """Write a 3-D stack section by section, atomically.

    Sections go to a hidden temporary sibling of ``path``; :meth:`commit` moves the finished
    stack into place, :meth:`abort` removes the temporary. As a context manager, a clean exit
    commits and any exception (including :class:`KeyboardInterrupt`) aborts, so ``path`` is
    either the complete new stack or untouched.

    For zarr each section is written to the temporary store as soon as it is given, so a big
    stack never needs to fit in memory. For TIFF the sections given are kept in memory and
    the file is written at :meth:`commit`, in z order.

    Parameters
    ----------
    path : str or Path
        Destination, ``.tif``/``.tiff`` or ``.zarr``.
    shape : tuple of 3 ints
        (Z, Y, X) of the stack.
    dtype : dtype
    base : array_like, shape (Z, Y, X), optional, keyword-only
        Where sections that were not written come from at :meth:`commit` (e.g. the original
        stack when only damaged sections are repaired); read one section at a time. Without
        it, unwritten sections are zeros.
    overwrite : bool, keyword-only
        Replace an existing ``path``. The old data are moved aside and deleted only after the
        new stack is in place.
    protect : iterable of paths, keyword-only
        Paths that must never be written, e.g. the inputs (see :func:`check_output_path`).
    voxel_size : tuple of 3 floats, optional, keyword-only
        (z, y, x) in nanometres, stored as ImageJ metadata (TIFF) or an attribute (zarr).
    compression : str, optional, keyword-only
        TIFF compression (e.g. ``"zlib"``); default none, which every TIFF reader opens.
        zarr stores always use zarr's default lossless compressor.
    description : str, optional, keyword-only
        Free text stored with the data (ImageJ ``Info`` for TIFF, the ``description``
        attribute for zarr), e.g. provenance and licence.

    Examples
    --------
    >>> with StackWriter("repaired.zarr", stack.shape, stack.dtype,
    ...                  base=stack) as out:                        # doctest: +SKIP
    ...     for z, section in iter_repair_stack(stack, masks):
    ...         out[z] = section
    """

    def __init__(self, path, shape, dtype, *, base=None, overwrite: bool = False,
                 protect: Iterable = (), voxel_size=None, compression: str | None = None,
                 description: str | None = None):
        self.path = check_output_path(path, protect=protect, overwrite=overwrite)
        self.format = stack_format(self.path, for_writing=True)
        self.shape = tuple(int(s) for s in shape)
        _check_3d(self.shape, self.path, "output")
        self.dtype = np.dtype(dtype)
        if base is not None:
            bshape = tuple(getattr(base, "shape", np.shape(base)))
            if bshape != self.shape:
                raise ValueError(f"base has shape {bshape}, expected {self.shape}.")
        self.base = base
        self.overwrite = bool(overwrite)
        self.voxel_size = None if voxel_size is None else tuple(float(v) for v in voxel_size)
        if self.voxel_size is not None and len(self.voxel_size) != 3:
            raise ValueError(f"voxel_size must be (z, y, x), got {voxel_size!r}.")
        self.compression = compression
        self.description = description
        self.written: set[int] = set()
        self._sections: dict[int, np.ndarray] = {}
        self._done = False
        self.tmp = _hidden_sibling(self.path, "partial")
        self._array = None
        if self.format == "zarr":
            import zarr

            y, x = self.shape[1:]
            attrs: dict = {}
            if self.voxel_size is not None:
                attrs.update(voxel_size=list(self.voxel_size), voxel_unit="nm")
            if description is not None:
                attrs["description"] = str(description)
            try:
                self._array = zarr.create_array(
                    store=str(self.tmp), shape=self.shape, dtype=self.dtype,
                    chunks=(1, min(y, 2048), min(x, 2048)), attributes=attrs,
                    dimension_names=("z", "y", "x"),
                )
            except BaseException:
                _remove(self.tmp)
                raise

    def __setitem__(self, z: int, section) -> None:
        """Write section ``z`` (a 2-D array of shape (Y, X))."""
        if self._done:
            raise RuntimeError("this StackWriter is already committed or aborted.")
        z = int(z)
        if not 0 <= z < self.shape[0]:
            raise IndexError(f"section z={z} is outside the stack (0 to {self.shape[0] - 1}).")
        section = np.asarray(section)
        if section.shape != self.shape[1:]:
            raise ValueError(
                f"section {z} has shape {section.shape}, expected {self.shape[1:]}."
            )
        if self._array is not None:
            self._array[z] = section.astype(self.dtype, copy=False)
        else:
            self._sections[z] = np.array(section, dtype=self.dtype, copy=True)
        self.written.add(z)

    def _section(self, z: int) -> np.ndarray:
        if z in self._sections:
            return self._sections[z]
        if self.base is not None:
            return np.asarray(self.base[z], dtype=self.dtype)
        return np.zeros(self.shape[1:], self.dtype)

    def _pages(self) -> Iterator[np.ndarray]:
        for z in range(self.shape[0]):
            yield np.ascontiguousarray(self._section(z))

    def _write_tiff(self) -> None:
        import tifffile

        nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        imagej = self.dtype.type in _IMAGEJ_DTYPES and nbytes < _TIFF_LIMIT
        # minisblack: never let 3- or 4-slice stacks be taken for RGB(A) planes
        kwargs: dict = {"compression": self.compression, "photometric": "minisblack"}
        if imagej:
            meta = {"axes": "ZYX"}
            if self.voxel_size is not None:
                vz, vy, vx = self.voxel_size
                meta.update(spacing=vz, unit="nm")
                kwargs["resolution"] = (1.0 / vx, 1.0 / vy)
            if self.description is not None:
                meta["Info"] = str(self.description)
            kwargs.update(imagej=True, metadata=meta)
        else:
            kwargs.update(bigtiff=nbytes >= _TIFF_LIMIT, metadata={"axes": "ZYX"},
                          description=self.description)
        tifffile.imwrite(self.tmp, data=self._pages(), shape=self.shape, dtype=self.dtype,
                         **kwargs)

    def _fill_zarr(self) -> None:
        if self.base is None:
            return  # unwritten chunks read as the fill value 0
        for z in range(self.shape[0]):
            if z not in self.written:
                self._array[z] = np.asarray(self.base[z], dtype=self.dtype)

    def commit(self) -> Path:
        """Finish the stack and move it to :attr:`path`; returns the path."""
        if self._done:
            raise RuntimeError("this StackWriter is already committed or aborted.")
        try:
            if self.format == "zarr":
                self._fill_zarr()
            else:
                self._write_tiff()
            self._move_into_place()
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._sections.clear()
        return self.path

    def _move_into_place(self) -> None:
        dest = self.path
        if not (dest.exists() or dest.is_symlink()):
            os.rename(self.tmp, dest)  # fails, rather than replaces, if dest appeared meanwhile
            return
        if not self.overwrite:  # the destination appeared while we were writing
            raise FileExistsError(f"the output {str(dest)!r} appeared while writing; "
                                  "nothing was replaced.")
        if dest.is_file() and self.tmp.is_file():
            os.replace(self.tmp, dest)
            return
        old = _hidden_sibling(dest, "old")
        os.rename(dest, old)
        try:
            os.rename(self.tmp, dest)
        except BaseException:
            os.rename(old, dest)  # put the original back
            raise
        _remove(old)

    def abort(self) -> None:
        """Discard everything written; the destination is left untouched."""
        self._done = True
        self._sections.clear()
        self._array = None
        _remove(self.tmp)

    def __enter__(self) -> StackWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_stack(path, array, *, overwrite: bool = False, protect: Iterable = (),
                voxel_size=None, compression: str | None = None,
                description: str | None = None) -> Path:
    """Write a 3-D stack to a TIFF file or zarr store, atomically.

    The stack is written to a hidden temporary sibling of ``path`` and renamed into place when
    complete; on any error or Ctrl-C the temporary is removed and ``path`` is untouched. When
    ``overwrite`` replaces an existing zarr store, the old one is deleted only after the new
    one is in place.

    Parameters
    ----------
    path : str or Path
        ``.tif``/``.tiff`` or ``.zarr`` destination.
    array : array_like, shape (Z, Y, X)
        numpy, zarr or dask array; read one section at a time.
    overwrite, protect, voxel_size, compression, description : keyword-only
        See :class:`StackWriter`.

    Returns
    -------
    Path : the written path.
    """
    shape = tuple(array.shape) if hasattr(array, "shape") else np.shape(array)
    if not hasattr(array, "dtype"):
        array = np.asarray(array)
    writer = StackWriter(path, shape, array.dtype, base=array, overwrite=overwrite,
                         protect=protect, voxel_size=voxel_size, compression=compression,
                         description=description)
    return writer.commit()
