"""OME-Zarr (OME-NGFF 0.4 and 0.5) stacks, through the ome-zarr library.

Reading takes the highest-resolution level of the first multiscale image, drops axes of
size 1 that are not spatial (time, channel) and reads the voxel size from the level's scale
transformation. Writing makes a store that napari (napari-ome-zarr) and neuroglancer open:
level 0 written section by section, then a pyramid (each level half the size in y and x,
down to about 256 pixels), and the multiscale metadata written by ome-zarr with the voxel
size in nanometres. A store is OME-Zarr when its name ends in ``.ome.zarr``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ._logs import quiet_logger

__all__ = ["is_ome_path", "is_ome_zarr", "open_ome_zarr", "write_pyramid"]

_TO_NM = {"nanometer": 1.0, "micrometer": 1e3, "millimeter": 1e6, "angstrom": 0.1,
          "picometer": 1e-3, "meter": 1e9}
_SPATIAL = ("z", "y", "x")


def is_ome_path(path) -> bool:
    """True for a path naming an OME-Zarr store (``*.ome.zarr``)."""
    return Path(path).name.lower().endswith(".ome.zarr")


def _multiscales(path):
    """The ome-zarr reader's node for the image at ``path``, or None if it is none."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    with quiet_logger("ome_zarr", logging.ERROR):
        location = parse_url(str(path), mode="r")
        if location is None:
            return None
        for node in Reader(location)():
            if any(isinstance(spec, Multiscales) for spec in node.specs):
                return node
    return None


def is_ome_zarr(path) -> bool:
    """True when ``path`` is a zarr group holding OME-NGFF multiscale metadata."""
    import zarr

    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:  # not a group (an array, or not zarr at all)
        return False
    return "multiscales" in attrs or "multiscales" in attrs.get("ome", {})


def open_ome_zarr(path, name: str = "stack"):
    """The highest-resolution level of an OME-Zarr image.

    Returns
    -------
    array : zarr.Array
        Level 0, all axes.
    index : tuple
        What to index ``array`` with first to get (z, y, x): 0 for each non-spatial axis.
    voxel_size : (float, float, float) or None
        (z, y, x) in nanometres, when the metadata gives a scale with units.

    Raises
    ------
    ValueError
        For a non-spatial axis (channel, time) of more than one element, or data that is
        not 3-D in space.
    """
    import zarr
    from ome_zarr.reader import Multiscales

    node = _multiscales(path)
    if node is None:
        raise ValueError(f"{name} {str(path)!r} holds no OME-NGFF multiscale image.")
    spec = next(s for s in node.specs if isinstance(s, Multiscales))
    array = zarr.open_group(str(path), mode="r")[spec.datasets[0]]
    axes = node.metadata.get("axes") or [{"name": a} for a in "tczyx"[-array.ndim:]]
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    index, kept = [], []
    for axis, size in zip(names, array.shape, strict=True):
        if axis in _SPATIAL:
            kept.append(axis)
        elif size == 1:
            index.append(0)
        else:
            raise ValueError(
                f"{name} {str(path)!r} has {size} elements along its {axis!r} axis (axes "
                f"{names}); save one channel / time point as its own image first.")
    if kept != list(_SPATIAL):
        raise ValueError(f"{name} {str(path)!r} has the spatial axes {kept}; expected "
                         "z, y and x (a 3-D stack of sections).")
    return array, tuple(index), _voxel_size(node, names, axes)


def _voxel_size(node, names, axes) -> tuple[float, float, float] | None:
    transforms = (node.metadata.get("coordinateTransformations") or [[]])[0]
    scale = next((t.get("scale") for t in transforms if t.get("type") == "scale"), None)
    if scale is None:
        return None
    out = []
    for axis in _SPATIAL:
        i = names.index(axis)
        unit = axes[i].get("unit") if isinstance(axes[i], dict) else None
        if unit not in _TO_NM:
            return None
        out.append(float(scale[i]) * _TO_NM[unit])
    return tuple(out)


def write_pyramid(group, *, voxel_size=None, name: str = "image", min_size: int = 256) -> None:
    """Add the lower-resolution levels and the OME-NGFF metadata to a group whose array
    ``"0"`` holds the full-resolution (z, y, x) stack.

    Each level halves y and x (2 x 2 means; z is kept: sections are the unit of work) until
    the next would be smaller than ``min_size`` pixels; it is computed section by section
    from the level above, so memory stays that of one section.
    """
    import cv2
    from ome_zarr.writer import write_multiscales_metadata

    from ...engine import cast_to

    level = group["0"]
    nz, y, x = level.shape
    factors = [1]
    while min(y, x) // (2 * factors[-1]) >= min_size:
        factors.append(2 * factors[-1])
    for k, f in enumerate(factors[1:], start=1):
        shape = (nz, -(-y // f), -(-x // f))
        nxt = group.create_array(str(k), shape=shape, dtype=level.dtype,
                                 chunks=(1, min(shape[1], 2048), min(shape[2], 2048)),
                                 dimension_names=("z", "y", "x"))
        for z in range(nz):
            sec = np.asarray(level[z]).astype(np.float32)
            small = cv2.resize(sec, (shape[2], shape[1]), interpolation=cv2.INTER_AREA)
            nxt[z] = cast_to(small, level.dtype)
        level = nxt
    vz, vy, vx = voxel_size if voxel_size is not None else (1.0, 1.0, 1.0)
    datasets = [{"path": str(k), "coordinateTransformations": [
        {"type": "scale", "scale": [float(vz), float(vy) * f, float(vx) * f]}]}
        for k, f in enumerate(factors)]
    axes = [{"name": a, "type": "space"} for a in _SPATIAL]
    if voxel_size is not None:
        for a in axes:
            a["unit"] = "nanometer"
    with quiet_logger("ome_zarr", logging.ERROR):
        write_multiscales_metadata(group, datasets, axes=axes, name=name)
