"""The bundled sample stack: a small FIB-SEM volume of the Drosophila medulla.

16 sections of 192 x 192 pixels, uint8, voxel size 40 x 10 x 10 nm (z, y, x): every 4th
slice of a 10 nm isotropic FIB-SEM volume, so that neighbouring sections are as far apart as in
serial-section EM. Made by ``benchmarks/make_sample_data.py``; source and licence in
``data/ATTRIBUTION.md`` (CC BY 3.0, Janelia FlyEM; cite Parag et al. 2015).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from .stacks import read_stack

__all__ = ["SAMPLE_INFO", "sample_path", "load_sample"]

_FILE = "fibsem_medulla_sample.tif"

#: What :func:`load_sample` returns as ``info`` (a copy of it).
SAMPLE_INFO = {
    "name": "fibsem_medulla_sample",
    "description": "FIB-SEM, Drosophila medulla (optic lobe), every 4th slice of a 10 nm "
                   "isotropic volume, cropped to 192 x 192 pixels",
    "voxel_size": (40.0, 10.0, 10.0),  # (z, y, x)
    "voxel_unit": "nm",
    "license": "CC BY 3.0",
    "attribution": (
        "Janelia FlyEM, NeuroProof examples (github.com/janelia-flyem/neuroproof_examples, "
        "training_sample1), CC BY 3.0; modified: cropped and subsampled. Cite: Parag, T., "
        "Chakraborty, A., Plaza, S., Scheffer, L. (2015). A context-aware delayed "
        "agglomeration framework for electron microscopy segmentation. PLoS ONE 10(5): "
        "e0125825. doi:10.1371/journal.pone.0125825"
    ),
}


def sample_path() -> Path:
    """Path of the bundled sample TIFF (inside the installed package)."""
    return Path(str(resources.files("napari_flowinpaint") / "data" / _FILE))


def load_sample() -> tuple[np.ndarray, dict]:
    """Load the bundled sample stack.

    Returns
    -------
    stack : ndarray, shape (16, 192, 192), uint8
        Axes (z, y, x).
    info : dict
        ``name``, ``description``, ``voxel_size`` ((z, y, x) in nm), ``voxel_unit``,
        ``license``, ``attribution`` (text to show wherever the data are shown) and ``path``.

    Raises
    ------
    FileNotFoundError
        If the package was installed without its data files.

    Examples
    --------
    >>> from napari_flowinpaint.tasks.io import load_sample
    >>> stack, info = load_sample()
    >>> stack.shape, stack.dtype, info["voxel_size"]
    ((16, 192, 192), dtype('uint8'), (40.0, 10.0, 10.0))

    References
    ----------
    .. [1] Parag, T., Chakraborty, A., Plaza, S., Scheffer, L. (2015). A context-aware
       delayed agglomeration framework for electron microscopy segmentation. PLoS ONE
       10(5): e0125825. https://doi.org/10.1371/journal.pone.0125825
    """
    ref = resources.files("napari_flowinpaint") / "data" / _FILE
    if not ref.is_file():
        raise FileNotFoundError(
            f"the sample stack {_FILE} is missing from the installed package; reinstall "
            "napari-flowinpaint (the wheel ships it as package data)."
        )
    with resources.as_file(ref) as path:
        stack = np.asarray(read_stack(path, name="sample"))
        info = dict(SAMPLE_INFO, path=str(path))
    return stack, info
