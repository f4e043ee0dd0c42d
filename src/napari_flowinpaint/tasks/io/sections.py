"""A folder of one image per section (TIFF or PNG) read as a lazy stack: the ``"folder"``
format of :func:`~napari_flowinpaint.tasks.io.read_stack`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .formats import FormatStack

__all__ = ["SectionFiles", "folder_voxel_size"]

_SECTION_SUFFIXES = {".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG"}


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _image_header(file: Path) -> tuple[tuple[int, ...], np.dtype, str]:
    """(shape, dtype, what) of one section image, from its header (no pixels read)."""
    if _SECTION_SUFFIXES[file.suffix.lower()] == "TIFF":
        import tifffile

        from ._logs import quiet_logger

        with quiet_logger("tifffile"), tifffile.TiffFile(file) as tif:
            series = tif.series[0]
            return tuple(series.shape), np.dtype(series.dtype), series.axes
    from PIL import Image

    modes = {"L": np.uint8, "I;16": np.uint16, "I;16B": np.uint16, "I": np.int32,
             "F": np.float32, "1": np.bool_}
    with Image.open(file) as im:
        dtype = modes.get(im.mode)
        shape = (im.size[1], im.size[0]) if dtype is not None else (im.size[1], im.size[0], 3)
        return shape, np.dtype(dtype or np.uint8), im.mode


def folder_voxel_size(folder) -> tuple[float, float, float] | None:
    """Voxel size ``(z, y, x)`` in nm of a folder of sections: from its ``stack.json``
    (:data:`~napari_flowinpaint.tasks.io.targets.SECTIONS_JSON`, written with a folder
    output), else from the ImageJ metadata (``spacing``, ``unit``, resolution) of its first
    TIFF section; None when neither says."""
    import json

    from .targets import SECTIONS_JSON

    folder = Path(folder)
    try:
        meta = json.loads((folder / SECTIONS_JSON).read_text(encoding="utf-8"))
        vs, unit = meta.get("voxel_size"), meta.get("voxel_unit", "nm")
        if unit == "nm" and vs is not None and len(vs) == 3 and all(v > 0 for v in vs):
            return tuple(float(v) for v in vs)
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                    and _SECTION_SUFFIXES.get(p.suffix.lower()) == "TIFF"),
                   key=lambda p: _natural_key(p.name))
    if not files:
        return None
    from .stacks import read_voxel_size

    try:
        return read_voxel_size(files[0])
    except Exception:  # noqa: BLE001 - an unreadable file has no voxel size to give
        return None


class SectionFiles(FormatStack):
    """A folder of one image per section (TIFF or PNG) as a lazy (z, y, x) stack.

    The sections are the folder's ``.tif``/``.tiff`` or ``.png`` files (hidden files left
    out) in natural order of their names. Every header is checked when the folder is opened
    (no pixels read): same size and type as the first image, one grey-level image per file.
    Indexing (``stack[z]``, ``stack[z0:z1, y0:y1]``) reads only the sections asked for.

    Parameters
    ----------
    folder : Path
    name : str, keyword-only
        How the stack is called in error messages.

    Attributes
    ----------
    files : list of Path
        The section files, in z order.
    path, name, shape, dtype, ndim
    """

    def __init__(self, folder, *, name: str = "stack"):
        folder = Path(folder)
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                 and p.suffix.lower() in _SECTION_SUFFIXES]
        if not files:
            raise ValueError(
                f"{name} folder {str(folder)!r} holds no .tif/.tiff or .png image; expected one "
                "image per section (e.g. 000.tif, 001.tif, ...). For a zarr store without the "
                ".zarr extension pass --format zarr (a path 'zarr:FOLDER').")
        kinds = sorted({_SECTION_SUFFIXES[p.suffix.lower()] for p in files})
        if len(kinds) > 1:
            raise ValueError(f"{name} folder {str(folder)!r} mixes TIFF and PNG images; keep "
                             "the sections of one stack, in one format, alone in a folder.")
        self.files = sorted(files, key=lambda p: _natural_key(p.name))
        first = None
        for file in self.files:
            try:
                s, d, w = _image_header(file)
            except Exception as exc:  # tifffile and Pillow raise many kinds
                raise ValueError(f"{name} folder {str(folder)!r}: {file.name!r} could not be "
                                 f"read as a {kinds[0]} image ({exc}).") from exc
            if len(s) != 2:
                hint = ("an RGB or multichannel image: convert the sections to greyscale "
                        "(Fiji: Image > Type > 8-bit)" if len(s) == 3 and s[-1] in (3, 4)
                        or w in ("RGB", "RGBA", "P", "LA", "YXS") else
                        "several images in one file: a folder holds one section per file")
                raise ValueError(f"{name} folder {str(folder)!r}: {file.name!r} has shape "
                                 f"{s} ({w}), {hint}.")
            first = first or (s, d)
            if (s, d) != first:
                shape, dtype = first
                raise ValueError(
                    f"{name} folder {str(folder)!r}: the section images differ in size or type: "
                    f"{file.name!r} is {s[0]} x {s[1]} {d}, but the first, "
                    f"{self.files[0].name!r}, is {shape[0]} x {shape[1]} {dtype}. Every section "
                    "must have the same size and type (crop or pad them, e.g. in Fiji, or "
                    "remove the files that are not sections).")
        super().__init__(folder, name, (len(self.files), *first[0]), first[1])

    def read_section(self, z: int) -> np.ndarray:
        """Section ``z`` (0 <= z < len), read from its file."""
        file = self.files[z]
        if file.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(file) as im:
                return np.asarray(im, dtype=self.dtype)
        import tifffile

        return np.asarray(tifffile.imread(file), dtype=self.dtype)

    def _read(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1:]
        first, rest = (key[0], key[1:]) if key else (slice(None), ())
        n = self.shape[0]
        if isinstance(first, int | np.integer):
            z = int(first) + (n if first < 0 else 0)
            if not 0 <= z < n:
                raise IndexError(f"section {int(first)} is outside the stack of {n} sections.")
            return self.read_section(z)[rest]
        if isinstance(first, slice):
            zs = range(*first.indices(n))
        else:
            zs = np.arange(n)[np.asarray(first)]
        empty = np.empty(self.shape[1:], self.dtype)[rest]
        out = np.empty((len(zs), *empty.shape), self.dtype)
        for i, z in enumerate(zs):
            out[i] = self.read_section(int(z))[rest]
        return out
