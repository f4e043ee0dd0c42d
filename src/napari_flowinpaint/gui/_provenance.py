"""The provenance record of a stack saved by the Repair widget's **Save result...**
(:mod:`napari_flowinpaint.tasks.provenance`): the sections repaired in napari, with the
damaged pixels of the mask painted for them and their mean confidence, the image, and the
engine's settings; stored in the saved stack and in its sidecar, as ``repair`` does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..tasks.provenance import mask_record, painted_record
from ._save import voxel_size_nm

__all__ = ["save_record"]


def save_record(widget, image, result, path: Path) -> Callable[[], dict]:
    """A function that makes the record of saving ``result`` (the ``"<image> repaired"``
    layer) to ``path``; called in the save's worker thread, since it reads the mask and the
    confidence of each repaired section."""
    repaired = list(getattr(result.data, "repaired", []))
    mask = widget._mask.value
    confidence = widget._find(image, "confidence")
    engine = widget._inpainter
    voxel, unit = voxel_size_nm(image)
    source = image.source.path

    def build() -> dict:
        pixels, means = {}, {}
        for z in repaired:
            m = None if mask is None else np.asarray(mask.data[z]) != 0
            pixels[z] = 0 if m is None else int(m.sum())
            if confidence is not None and m is not None and m.any():
                means[z] = float(np.asarray(confidence.data[z])[m].mean())
        masked = mask_record("painted", None if mask is None else mask.source.path)
        masked["layer"] = None if mask is None else mask.name
        return painted_record(path, source=source, name=image.name, stack=image.data,
                              voxel=voxel if unit == "nm" else None, mask=masked,
                              pixels=pixels, means=means, engine=engine)

    return build
