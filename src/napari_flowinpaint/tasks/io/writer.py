"""Writing image stacks (TIFF, zarr, HDF5, a folder of sections, MRC), atomically.

* ``.tif`` / ``.tiff``: written as an ImageJ hyperstack (axes z, y, x, voxel size kept) for
  uint8, uint16 and float32 data that fits in 4 GB, otherwise as a plain (Big)TIFF.
* ``.zarr``: written as a zarr format 3 array at the store root, section by section;
  ``.ome.zarr``: an OME-Zarr (OME-NGFF 0.5) image with a pyramid and the voxel size
  (:func:`~napari_flowinpaint.tasks.io.ome.write_pyramid`).
* ``out.h5[:/dataset]``, ``out/`` (``out/*.png``), ``out.mrc``: section by section
  (:mod:`.sinks`; the rules of the paths: :mod:`.targets`).

Writes are atomic (:func:`napari_flowinpaint.engine.files.atomic_output`'s rules): the data go
to a hidden temporary sibling of the destination that is moved into place only once
complete. If anything fails or the user presses Ctrl-C, the temporary is removed and the
destination is left as it was: never a half-written output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ...engine.files import explain_write_error, hidden_sibling, move_into_place, remove_path
from .ome import is_ome_path, write_pyramid
from .sinks import SINK_FORMATS, open_sink
from .stacks import check_3d
from .targets import check_output_path, output_target

__all__ = ["EMPTY_CHUNKS", "StackWriter", "write_stack"]

_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
#: zarr array settings of every stack written: a section of zeros is stored, not left out,
#: so that a chunk missing from an image is an error when it is read (:class:`.LazyStack`)
EMPTY_CHUNKS = {"write_empty_chunks": True}
_TIFF_LIMIT = 2**32 - 2**25  # bytes of pixel data above which a BigTIFF is needed


class StackWriter:
    """Write a 3-D stack section by section, atomically.

    Sections go to a hidden temporary sibling of ``path``; :meth:`commit` moves the finished
    stack into place, :meth:`abort` removes the temporary. As a context manager, a clean exit
    commits and any exception (including :class:`KeyboardInterrupt`) aborts, so ``path`` is
    either the complete new stack or untouched.

    For zarr, HDF5, a folder of sections and MRC each section is written to the temporary
    as soon as it is given, so a big stack never needs to fit in memory. For TIFF the
    sections given are kept in memory and the file is written at :meth:`commit`, in z order.

    Parameters
    ----------
    path : str or Path
        Destination: ``.tif``/``.tiff``, ``.zarr``, ``.ome.zarr``, ``.h5`` (or
        ``out.h5:/dataset``), ``.mrc``, or a folder of sections (``out/``, ``out/*.png``);
        see :mod:`.targets`. Refused before anything is written when the format cannot
        hold ``dtype``.
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
        (z, y, x) in nanometres, stored as ImageJ metadata (TIFF), an attribute (zarr), the
        ``resolution`` attribute (HDF5, as CREMI), ``stack.json`` (a folder) or the header
        (MRC).
    compression : str, optional, keyword-only
        TIFF compression (e.g. ``"zlib"``), of a folder's TIFF sections too; default none,
        which every TIFF reader opens. zarr stores always use zarr's default lossless
        compressor, HDF5 gzip.
    description : str, optional, keyword-only
        Free text stored with the data (ImageJ ``Info`` for TIFF, the ``description``
        attribute for zarr and HDF5, ``stack.json`` for a folder, the first line as a label
        for MRC), e.g. provenance and licence. May be set (``writer.description
        = ...``) until :meth:`commit`, which stores it: a record of the work done.
    attributes : dict, optional, keyword-only
        More named values stored with the data, like ``description`` (settable until
        :meth:`commit`): attributes of the zarr array (the OME-Zarr group) or of the HDF5
        dataset (a value that is neither text nor numbers as JSON text), ImageJ
        ``Properties`` (JSON text) or the JSON metadata of a plain TIFF, ``stack.json``'s
        ``attributes`` for a folder; MRC keeps none.

    Examples
    --------
    >>> with StackWriter("repaired.zarr", stack.shape, stack.dtype,
    ...                  base=stack) as out:                        # doctest: +SKIP
    ...     for z, section in iter_repair_stack(stack, masks):
    ...         out[z] = section
    """

    def __init__(self, path, shape, dtype, *, base=None, overwrite: bool = False,
                 protect: Iterable = (), voxel_size=None, compression: str | None = None,
                 description: str | None = None, attributes: dict | None = None):
        self.target = output_target(path)
        self.path = check_output_path(path, protect=protect, overwrite=overwrite, dtype=dtype)
        self.format = self.target.format
        self.shape = tuple(int(s) for s in shape)
        check_3d(self.shape, self.path, "output")
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
        self.attributes = dict(attributes or {})
        self.written: set[int] = set()
        self._sections: dict[int, np.ndarray] = {}
        self._done = False
        self.tmp = hidden_sibling(self.path, "partial")
        self.ome = is_ome_path(self.path)
        self._array = self._sink = None
        if self.format in SINK_FORMATS:
            try:
                self._sink = open_sink(self.target, self.tmp, self.shape, self.dtype,
                                       voxel_size=self.voxel_size, compression=compression)
            except BaseException:
                remove_path(self.tmp)
                raise
        elif self.format == "zarr":
            import zarr

            y, x = self.shape[1:]
            attrs: dict = {}
            if self.voxel_size is not None:
                attrs.update(voxel_size=list(self.voxel_size), voxel_unit="nm")
            if description is not None:
                attrs["description"] = str(description)
            spec = dict(shape=self.shape, dtype=self.dtype, dimension_names=("z", "y", "x"),
                        chunks=(1, min(y, 2048), min(x, 2048)), config=EMPTY_CHUNKS)
            try:
                if self.ome:  # a group: level "0" now, the pyramid and metadata at commit
                    self._group = zarr.open_group(str(self.tmp), mode="w", attributes=attrs)
                    self._array = self._group.create_array("0", **spec)
                else:
                    self._array = zarr.create_array(store=str(self.tmp), attributes=attrs,
                                                    **spec)
            except BaseException:
                remove_path(self.tmp)
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
        if self._array is not None or self._sink is not None:
            try:
                section = section.astype(self.dtype, copy=False)
                if self._sink is not None:
                    self._sink.write(z, section)
                else:
                    self._array[z] = section
            except OSError as exc:  # e.g. the disk is full: say which output, not the temporary
                raise explain_write_error(exc, self.tmp, self.path, writing=True) from exc
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
            if self.attributes:
                meta["Properties"] = {str(k): v if isinstance(v, str) else json.dumps(v)
                                      for k, v in self.attributes.items()}
            kwargs.update(imagej=True, metadata=meta)
        else:
            extra = json.loads(json.dumps(self.attributes, default=str))
            kwargs.update(bigtiff=nbytes >= _TIFF_LIMIT, metadata={**extra, "axes": "ZYX"},
                          description=self.description)
        tifffile.imwrite(self.tmp, data=self._pages(), shape=self.shape, dtype=self.dtype,
                         **kwargs)

    def _fill_zarr(self) -> None:
        if self.base is None:
            return  # unwritten chunks read as the fill value 0 (a mask reads them so)
        for z in range(self.shape[0]):
            if z not in self.written:
                self._array[z] = np.asarray(self.base[z], dtype=self.dtype)

    def _finish_sink(self) -> None:
        for z in range(self.shape[0]):
            if z not in self.written and (self.base is not None
                                          or self._sink.needs_every_section):
                self._sink.write(z, self._section(z))
        self._sink.finish(self.description, self.attributes)
        self._sink.close()

    def commit(self) -> Path:
        """Finish the stack and move it to :attr:`path`; returns the path."""
        if self._done:
            raise RuntimeError("this StackWriter is already committed or aborted.")
        try:
            if self._sink is not None:
                self._finish_sink()
            elif self.format == "zarr":
                self._fill_zarr()
                if self.description is not None:  # as it is now (see the parameter)
                    node = self._group if self.ome else self._array
                    node.attrs["description"] = str(self.description)
                if self.attributes:
                    node = self._group if self.ome else self._array
                    node.attrs.update(json.loads(json.dumps(self.attributes, default=str)))
                if self.ome:
                    write_pyramid(self._group, voxel_size=self.voxel_size, name=self.path.name)
            else:
                self._write_tiff()
            move_into_place(self.tmp, self.path, overwrite=self.overwrite)
        except OSError as exc:
            self.abort()
            raise explain_write_error(exc, self.tmp, self.path, writing=True) from exc
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._sections.clear()
        return self.path

    def abort(self) -> None:
        """Discard everything written; the destination is left untouched."""
        self._done = True
        self._sections.clear()
        self._array = None
        if self._sink is not None:
            try:
                self._sink.close()
            except Exception:  # noqa: BLE001 - the temporary goes anyway
                pass
        remove_path(self.tmp)

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
                description: str | None = None, attributes: dict | None = None) -> Path:
    """Write a 3-D stack to a TIFF, zarr, HDF5 or MRC file or a folder of sections,
    atomically.

    The stack is written to a hidden temporary sibling of ``path`` and renamed into place when
    complete; on any error or Ctrl-C the temporary is removed and ``path`` is untouched. When
    ``overwrite`` replaces an existing zarr store, the old one is deleted only after the new
    one is in place.

    Parameters
    ----------
    path : str or Path
        Destination (see :class:`StackWriter`: ``.tif``, ``.zarr``, ``.ome.zarr``,
        ``out.h5:/dataset``, ``.mrc``, ``out/``).
    array : array_like, shape (Z, Y, X)
        numpy, zarr or dask array; read one section at a time.
    overwrite, protect, voxel_size, compression, description, attributes : keyword-only
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
                         description=description, attributes=attributes)
    return writer.commit()
