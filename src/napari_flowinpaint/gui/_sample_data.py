"""Sample data contribution: a small FIB-SEM stack to try the repair on."""

from __future__ import annotations

__all__ = ["make_sample_data"]


def make_sample_data():
    """The bundled FIB-SEM medulla sample as a napari image layer.

    The stack and its description come from
    :func:`napari_flowinpaint.tasks.io.load_sample`; the layer's ``scale`` is the voxel
    size in nanometres, so sections and pixels are drawn at their true aspect ratio, and the
    source and licence are kept in the layer's metadata.

    Returns
    -------
    list of LayerDataTuple
        ``[(stack, kwargs, "image")]`` with ``stack`` a uint8 array of shape (Z, Y, X).

    References
    ----------
    .. [1] Parag, Chakraborty, Plaza and Scheffer (2015), "A context-aware delayed
           agglomeration framework for electron microscopy segmentation", PLoS ONE 10(5):
           e0125825. Data: Janelia FlyEM NeuroProof examples, CC BY 3.0.
    """
    from ..tasks.io import load_sample

    stack, info = load_sample()
    unit = info.get("voxel_unit", "nm")
    meta = {key: info[key] for key in ("description", "license", "attribution") if key in info}
    kwargs = {
        "name": info.get("name", "sample"),
        "scale": tuple(float(v) for v in info["voxel_size"]),
        "units": (unit,) * stack.ndim,
        "metadata": meta,
        "contrast_limits": (0, 255),
    }
    return [(stack, kwargs, "image")]
