"""N5 and Neuroglancer precomputed volumes, read lazily through :mod:`tensorstore` (the
optional extra ``napari-flowinpaint[tensorstore]``): the ``"n5"`` and ``"precomputed"``
formats of :func:`~napari_flowinpaint.tasks.io.read_stack`.

* N5 (a ``.n5`` folder; Janelia, BigDataViewer, Paintera): the path names the dataset inside
  the container (``vol.n5/setup0/timepoint0/s0``); a group holding one 3-D dataset, or one
  multiscale pyramid (``s0``, ``s1``, ...: its ``s0``), is enough. N5 lists its axes x
  first; they are read as (z, y, x). Voxel size from the dataset's ``pixelResolution``
  (``{"dimensions": [x, y, z], "unit": "nm"}``) or ``resolution`` (``[x, y, z]``, nm)
  attribute.
* Neuroglancer precomputed (a folder with an ``info`` file): its highest-resolution scale,
  first channel, axes (z, y, x), voxel size from the scale's ``resolution`` (nm).

A chunk missing from an N5 image is an error naming its section
(:class:`~.chunks.MissingSection`), never a blank section; masks (``sparse``) read it as the
fill value. Precomputed volumes read missing chunks as the fill value (large volumes often
leave out the chunks outside the tissue). The same volumes by URL: :mod:`.remote`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .chunks import key_sections, tensorstore_missing
from .formats import FormatStack

__all__ = ["TensorStack", "import_tensorstore", "is_precomputed", "n5_datasets",
           "n5_voxel_size", "open_tensorstore", "oriented", "precomputed_voxel_size",
           "tensorstore_voxel_size"]

_EXTRA = ("pip install 'napari-flowinpaint[tensorstore]' (or pip install tensorstore) to "
          "read {what}")
_TO_NM = {"nm": 1.0, "nanometer": 1.0, "um": 1000.0, "micrometer": 1000.0, "\u00b5m": 1000.0,
          "micron": 1000.0, "mm": 1e6, "millimeter": 1e6}


def is_precomputed(path) -> bool:
    """Whether ``path`` is a folder of a Neuroglancer precomputed volume (an ``info`` file
    with its ``scales``)."""
    info = Path(path) / "info"
    if not info.is_file():
        return False
    try:
        return "scales" in json.loads(info.read_text())
    except (OSError, ValueError):
        return False


def _attributes(folder: Path) -> dict:
    file = folder / "attributes.json"
    return json.loads(file.read_text()) if file.is_file() else {}


def n5_datasets(path) -> list[tuple[str, tuple[int, ...]]]:
    """The datasets of the N5 container or group at ``path``, as (path relative to it, shape
    (z, y, x)), in sorted order (``path`` itself when it is a dataset)."""
    root = Path(path)
    found = []
    for attrs_file in sorted(root.rglob("attributes.json")):
        attrs = json.loads(attrs_file.read_text())
        if "dimensions" in attrs:
            rel = attrs_file.parent.relative_to(root).as_posix()
            found.append(("" if rel == "." else rel, tuple(attrs["dimensions"][::-1])))
    return found


def _pick_n5(path: Path, name: str) -> Path:
    """The dataset ``path`` names: itself, its only 3-D dataset or its only pyramid's s0."""
    datasets = n5_datasets(path)
    if any(rel == "" for rel, _ in datasets):
        return path
    volumes = [(rel, shape) for rel, shape in datasets if len(shape) == 3]
    parents = {str(Path(rel).parent) for rel, _ in volumes}
    scales = [rel for rel, _ in volumes if re.fullmatch(r"s\d+", Path(rel).name)]
    if len(volumes) == 1:
        return path / volumes[0][0]
    if volumes and len(parents) == 1 and len(scales) == len(volumes):
        return path / next(rel for rel in scales if Path(rel).name == "s0")
    listing = "; ".join(f"{rel} {'x'.join(map(str, s))}" for rel, s in datasets)
    if not volumes:
        raise ValueError(f"{name} N5 {str(path)!r} holds no 3-D dataset; it holds: "
                         f"{listing or 'no dataset at all'}.")
    raise ValueError(f"{name} N5 {str(path)!r} holds several 3-D datasets: {listing}. Name "
                     f"the one to use as a path inside it, e.g. "
                     f"{str(path / volumes[0][0])!r}.")


def import_tensorstore(what: str = "N5 and Neuroglancer precomputed volumes"):
    """The :mod:`tensorstore` module, or :class:`ImportError` saying how to install it to
    read ``what``."""
    try:
        import tensorstore
    except ImportError as exc:
        raise ImportError(f"tensorstore is not installed: {_EXTRA.format(what=what)}.") from exc
    return tensorstore


def oriented(store, fmt: str):
    """An opened N5 or precomputed ``store`` as (z, y, x) from 0: its axes reversed (both
    list x first), a precomputed volume's first channel (a volume may start anywhere)."""
    import tensorstore as ts

    if fmt == "precomputed":
        store = store[ts.d["channel"][0]]
    return store.T.translate_to[0]


def open_tensorstore(path, fmt: str, name: str = "stack", *,
                     sparse: bool = False) -> TensorStack:
    """The N5 dataset or precomputed volume at ``path`` (``fmt`` ``"n5"`` or
    ``"precomputed"``), read lazily; ``sparse``: an N5 chunk missing reads as the fill value
    (a mask), else reading its section raises :class:`~.chunks.MissingSection`.

    Raises
    ------
    ImportError
        Without tensorstore (the message says how to install it).
    ValueError
        If it cannot be read, or (N5) the dataset is not named where the container holds
        several (the message lists them).
    """
    ts = import_tensorstore()
    path = Path(path)
    if fmt == "n5":
        path = _pick_n5(path, name)
        spec = {"driver": "n5", "kvstore": {"driver": "file", "path": str(path.resolve())},
                "fill_missing_data_reads": bool(sparse)}
    else:
        spec = {"driver": "neuroglancer_precomputed", "scale_index": 0,
                "kvstore": {"driver": "file", "path": str(path.resolve()) + "/"}}
    try:
        store = ts.open(spec, read=True).result()
    except Exception as exc:  # tensorstore raises ValueError for most of what goes wrong
        raise ValueError(f"{name} {str(path)!r} could not be opened as {fmt} ({exc}).") from exc
    return TensorStack(oriented(store, fmt), path, name, reader=fmt.upper())


def tensorstore_voxel_size(path, fmt: str) -> tuple[float, float, float] | None:
    """Voxel size ``(z, y, x)`` in nm kept with an N5 dataset or precomputed volume, or
    None (see the module docstring)."""
    path = Path(path)
    if fmt == "precomputed":
        return precomputed_voxel_size(json.loads((path / "info").read_text()))
    return n5_voxel_size(_attributes(_pick_n5(path, "stack")))


def precomputed_voxel_size(info: dict) -> tuple[float, float, float] | None:
    """Voxel size ``(z, y, x)`` in nm of a precomputed volume's ``info`` (its first scale)."""
    return _zyx_nm(info["scales"][0].get("resolution"), "nm")


def n5_voxel_size(attrs: dict) -> tuple[float, float, float] | None:
    """Voxel size ``(z, y, x)`` in nm of an N5 dataset's ``attributes.json``."""
    pixel = attrs.get("pixelResolution")
    if isinstance(pixel, dict):
        return _zyx_nm(pixel.get("dimensions"), str(pixel.get("unit", "nm")))
    return _zyx_nm(attrs.get("resolution"), "nm")


def _zyx_nm(xyz, unit: str) -> tuple[float, float, float] | None:
    factor = _TO_NM.get(unit.strip().lower())
    if xyz is None or len(xyz) != 3 or factor is None or not all(v > 0 for v in xyz):
        return None
    return tuple(float(v) * factor for v in xyz[::-1])


class TensorStack(FormatStack):
    """A tensorstore volume (z, y, x) from 0: indexing reads only the chunks it touches. A
    chunk missing (where the store was opened with ``fill_missing_data_reads`` off) raises
    :class:`~.chunks.MissingSection`, naming the section; ``reader`` names the format in it.
    """

    def __init__(self, store, path, name: str, *, reader: str = "tensorstore"):
        super().__init__(path, name, store.shape, store.dtype.numpy_dtype)
        self.store, self.reader = store, reader

    def _read(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        # tensorstore counts no index from the end, steps no slice backwards and indexes
        # arrays its own way: those axes are read whole (a section: its extent), then
        # picked by numpy with the key as given, so the result is numpy's
        basic = all(isinstance(k, int | np.integer | slice) and not (
            isinstance(k, slice) and (k.step or 1) < 0) for k in key)
        ts_key, after = [], []
        for k, n in zip(key, self.shape, strict=True):
            if isinstance(k, int | np.integer):
                if not -n <= int(k) < n:
                    raise IndexError(f"index {int(k)} is outside an axis of size {n}.")
                z = int(k) % n
                ts_key.append(z if basic else slice(z, z + 1))
                after += [] if basic else [0]
            elif isinstance(k, slice) and (k.step or 1) > 0:
                ts_key.append(slice(*k.indices(n)))
                after.append(slice(None))
            else:
                ts_key.append(slice(None))
                after.append(k)
        try:
            data = self.store[tuple(ts_key)].read().result()
        except ValueError as exc:
            fill = self.store.fill_value
            first = key[0]
            z = int(first) % self.shape[0] if isinstance(first, int | np.integer) else next(
                (z for z in key_sections(key, self.shape[0]) if not self._readable(z)), None)
            missing = tensorstore_missing(exc, self.name, self.path, z, reader=self.reader,
                                          fill=0 if fill is None else np.asarray(fill).item())
            if missing is not None:
                raise missing from None
            raise
        return np.asarray(data[tuple(after)])

    def _readable(self, z: int) -> bool:
        try:
            self.store[z].read().result()
        except ValueError:
            return False
        return True
