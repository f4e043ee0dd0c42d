"""Reader contribution: ``File > Open`` of the vEM formats napari does not read itself.

HDF5 (``.h5``, ``.hdf5``, ``.hdf``), MRC (``.mrc``, ``.mrcs``, ``.map`` and IMOD's
``.st``, ``.ali``, ``.rec``) and N5 (``.n5``, with tensorstore) open as image layers over
a dask array that reads a section when napari draws it
(:func:`napari_flowinpaint.tasks.io.read_stack`), with the voxel size as the layer scale,
in nm. napari reads TIFF, zarr and folders of images itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["napari_get_reader", "read_layers"]

_OURS = ("hdf5", "mrc", "n5")


def _one_path(path):
    if isinstance(path, list | tuple):
        return str(path[0]) if len(path) == 1 else None
    return str(path)


def napari_get_reader(path):
    """:func:`read_layers` when ``path`` is one HDF5, MRC or N5 file, else None (napari asks
    another reader)."""
    from ..tasks.io.formats import lazy_format

    path = _one_path(path)
    return read_layers if path is not None and lazy_format(path) in _OURS else None


def read_layers(path) -> list[tuple]:
    """The image layers of an HDF5, MRC or N5 file, lazy.

    Parameters
    ----------
    path : str or list of one str
        An MRC file, an N5 dataset (or a container of one, or of one pyramid), an HDF5 file
        (every 3-D dataset in it becomes a layer) or one dataset of it,
        ``file.h5:/volumes/raw``.

    Returns
    -------
    list of LayerDataTuple
        ``(data, kwargs, "image")``: ``data`` a dask array of the (z, y, x) stack in chunks
        of one section; ``kwargs`` its name, its ``scale`` and ``units`` (the voxel size in
        nm, where the file keeps one) and ``metadata["source"]``, the path read.

    Raises
    ------
    ValueError
        If the file holds no 3-D stack (the message lists what it holds).
    """
    import dask.array as da

    from ..tasks.io import read_stack, read_voxel_size
    from ..tasks.io.formats import hdf5_datasets, hdf5_parts, lazy_format

    path = _one_path(path)
    hdf5 = lazy_format(path) == "hdf5"
    sources = [path]
    if hdf5 and not hdf5_parts(path)[1]:  # the whole file: each 3-D dataset
        file = hdf5_parts(path)[0]
        volumes = [p for p, shape, _ in hdf5_datasets(file) if len(shape) == 3]
        sources = [f"{file}:{p}" for p in volumes] or [path]  # none: read_stack says why
    layers = []
    for source in sources:
        stack = read_stack(source)
        data = da.from_array(stack, chunks=(1, *stack.shape[1:]), asarray=True, fancy=False,
                             meta=np.empty((0,) * stack.ndim, stack.dtype))
        file, inner = hdf5_parts(source) if hdf5 else (Path(source), "")
        kwargs = {"name": f"{file.name}:/{inner}" if inner else file.name,
                  "metadata": {"source": source}}
        voxel = read_voxel_size(source)
        if voxel is not None:
            kwargs.update(scale=tuple(voxel), units=("nm",) * 3)
        layers.append((data, kwargs, "image"))
    return layers
