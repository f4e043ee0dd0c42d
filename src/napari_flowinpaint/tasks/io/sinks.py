"""The output formats written a section at a time into a temporary (HDF5, a folder of
sections, MRC), for :class:`~napari_flowinpaint.tasks.io.writer.StackWriter`, which moves the
finished temporary into place.

* HDF5: one dataset, one chunk per section (tiles of 4096 x 4096 for sections over 1 GB),
  gzip-compressed (lossless, read by every HDF5 tool); the voxel size as the dataset's
  ``resolution`` attribute (z, y, x in nm, as CREMI writes it) and ``element_size_um`` (as
  ilastik and Fiji read it); the description and any other attributes as attributes of the
  dataset (a value that is not text or numbers as JSON text).
* A folder of sections: one TIFF (ImageJ metadata with the voxel size where ImageJ takes the
  dtype) or PNG per section, zero-padded names in z order, and :data:`.targets.SECTIONS_JSON`
  with the voxel size, the description and the attributes.
* MRC: the header made by :mod:`mrcfile`, the sections written into the file at their
  offsets (not through a memory map, whose pages would count as this process's memory), the
  voxel size in the header (Å), its statistics from the sections as they are written (never
  the whole stack at once); uint8 as mode 0 marked unsigned as IMOD marks it; the
  description's first line as a label of the header.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .targets import SECTIONS_JSON, OutputTarget

__all__ = ["SINK_FORMATS", "FolderSink", "Hdf5Sink", "MrcSink", "open_sink"]

#: The output formats of this module.
SINK_FORMATS = ("hdf5", "folder", "mrc")
_CHUNK_LIMIT = 1 << 30  # bytes of a section above which an HDF5 chunk is a tile
_TILE = 4096
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
_IMOD_STAMP = 1146047817
_STATS_BLOCK = 1 << 20  # pixels of a section turned into float64 at once (8 MB)


def open_sink(target: OutputTarget, tmp: Path, shape, dtype, *, voxel_size=None,
              compression: str | None = None):
    """A writer of ``target``'s format into the temporary ``tmp``: ``write(z, section)``
    for each section, ``finish(description, attributes)`` once they are all in (what to
    store with them, as it is then), and ``close()`` (also after an error; idempotent).
    ``needs_every_section`` says whether a section never written must be written (zeros)."""
    kinds = {"hdf5": Hdf5Sink, "folder": FolderSink, "mrc": MrcSink}
    options = {"compression": compression} if target.format == "folder" else {}
    return kinds[target.format](tmp, target.inner, tuple(shape), np.dtype(dtype),
                                voxel_size=voxel_size, **options)


def _attribute(value):
    """``value`` as HDF5 stores it: text and numbers (and arrays of numbers) as they are,
    anything else as JSON text."""
    if isinstance(value, str | bool | int | float | np.number):
        return value
    array = np.asarray(value) if isinstance(value, list | tuple | np.ndarray) else None
    if array is not None and array.size and array.dtype.kind in "biuf":
        return array
    return json.dumps(value)


class Hdf5Sink:
    """An HDF5 file holding one dataset, written a section at a time."""

    needs_every_section = False  # a chunk never written reads as 0

    def __init__(self, tmp: Path, inner: str, shape, dtype, *, voxel_size):
        import h5py

        y, x = shape[1:]
        chunks = ((1, y, x) if y * x * dtype.itemsize <= _CHUNK_LIMIT
                  else (1, min(y, _TILE), min(x, _TILE)))
        self.file = h5py.File(tmp, "w")
        try:
            self.dataset = self.file.create_dataset(
                inner, shape=shape, dtype=dtype, chunks=chunks, compression="gzip",
                compression_opts=1, shuffle=dtype.itemsize > 1, fillvalue=0)
            if voxel_size is not None:
                attrs = self.dataset.attrs
                attrs["resolution"] = np.asarray(voxel_size, np.float64)
                attrs["element_size_um"] = np.asarray(voxel_size, np.float64) / 1000.0
        except BaseException:
            self.close()
            raise

    def write(self, z: int, section: np.ndarray) -> None:
        self.dataset[z] = section

    def finish(self, description: str | None, attributes: dict) -> None:
        attrs = self.dataset.attrs
        for key, value in attributes.items():
            attrs[str(key)] = _attribute(value)
        if description is not None:
            attrs["description"] = str(description)

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()


class FolderSink:
    """A folder of one image per section (TIFF or PNG, as the pattern of names says)."""

    needs_every_section = True  # a missing file would be a missing section

    def __init__(self, tmp: Path, pattern: str, shape, dtype, *, voxel_size,
                 compression=None):
        prefix, suffix = pattern.split("*")
        width = max(4, len(str(shape[0] - 1)))
        self.names = [f"{prefix}{z:0{width}d}{suffix}" for z in range(shape[0])]
        self.folder, self.dtype, self.png = tmp, dtype, suffix.lower() == ".png"
        self.voxel_size, self.compression = voxel_size, compression
        self.meta = {"shape": list(shape), "dtype": str(dtype), "sections": pattern}
        if voxel_size is not None:
            self.meta.update(voxel_size=[float(v) for v in voxel_size], voxel_unit="nm")
        tmp.mkdir()

    def write(self, z: int, section: np.ndarray) -> None:
        file = self.folder / self.names[z]
        if self.png:
            from PIL import Image

            Image.fromarray(np.ascontiguousarray(section)).save(file, compress_level=3)
            return
        import tifffile

        kwargs: dict = {"photometric": "minisblack", "compression": self.compression}
        if self.dtype.type in _IMAGEJ_DTYPES:  # Fiji's File > Import > Image Sequence
            meta: dict = {"axes": "YX"}
            if self.voxel_size is not None:
                vz, vy, vx = self.voxel_size
                meta.update(spacing=vz, unit="nm")
                kwargs["resolution"] = (1.0 / vx, 1.0 / vy)
            kwargs.update(imagej=True, metadata=meta)
        tifffile.imwrite(file, section, **kwargs)

    def finish(self, description: str | None, attributes: dict) -> None:
        meta = dict(self.meta)
        if description is not None:
            meta["description"] = str(description)
        if attributes:
            meta["attributes"] = json.loads(json.dumps(attributes, default=str))
        (self.folder / SECTIONS_JSON).write_text(json.dumps(meta, indent=1) + "\n",
                                                 encoding="utf-8")

    def close(self) -> None:
        pass


class MrcSink:
    """An MRC file written a section at a time."""

    needs_every_section = True  # the header's statistics are those of every section

    def __init__(self, tmp: Path, inner: str, shape, dtype, *, voxel_size):
        import mrcfile

        self.unsigned = dtype == np.uint8  # mrcfile would widen it to uint16 (mode 6)
        self.mrc = mrcfile.new_mmap(str(tmp), shape=shape, mrc_mode=0 if self.unsigned else
                                    mrcfile.utils.mode_from_dtype(dtype), overwrite=True)
        self.stats: dict[int, tuple[float, float, float, float]] = {}
        self.count = int(np.prod(shape[1:]))
        self.file = None
        try:
            self.stored = self.mrc.data.dtype  # with the file's byte order
            self.offset = 1024 + int(self.mrc.header.nsymbt)  # header, extended header
            self.file = open(tmp, "r+b")  # noqa: SIM115 - closed by close()
            if voxel_size is not None:
                vz, vy, vx = (float(v) * 10.0 for v in voxel_size)
                self.mrc.voxel_size = (vx, vy, vz)
            if self.unsigned:  # IMOD's stamp without its "signed bytes" flag: unsigned
                header = self.mrc.header
                raw = bytearray(header.extra2.tobytes())
                raw[40:48] = np.array([_IMOD_STAMP, 0], dtype=header.mode.dtype).tobytes()
                header.extra2 = bytes(raw)
        except BaseException:
            self.close()
            raise

    def write(self, z: int, section: np.ndarray) -> None:
        raw = section.view(np.int8) if self.unsigned else section
        self.file.seek(self.offset + z * self.count * self.stored.itemsize)
        self.file.write(np.ascontiguousarray(raw, dtype=self.stored).tobytes())
        total = squares = 0.0  # in float64, a block of rows at a time (a big section
        for rows in np.array_split(section, -(-section.size // _STATS_BLOCK)):  # stays small)
            rows = rows.astype(np.float64)
            total += float(rows.sum())
            squares += float(np.square(rows, out=rows).sum())
        self.stats[z] = (float(section.min()), float(section.max()), total, squares)

    def finish(self, description: str | None, attributes: dict) -> None:
        """The description's first line as a label (80 characters of ASCII: an MRC header
        keeps no more); the attributes are not kept."""
        first = (description or "").strip().split("\n")[0]
        if first:
            self.mrc.add_label(first[:80].encode("ascii", "replace").decode("ascii"))

    def close(self) -> None:
        """Write the header's statistics (min, max, mean, rms of the sections written) and
        close the file."""
        mrc, self.mrc = self.mrc, None
        if mrc is None:
            return
        try:
            if self.file is not None:
                self.file.close()
            if self.stats:
                values = np.array(list(self.stats.values()))
                n = self.count * len(self.stats)
                mean = values[:, 2].sum() / n
                header = mrc.header
                header.dmin, header.dmax = values[:, 0].min(), values[:, 1].max()
                header.dmean = mean
                header.rms = np.sqrt(max(values[:, 3].sum() / n - mean * mean, 0.0))
        finally:
            mrc.close()
