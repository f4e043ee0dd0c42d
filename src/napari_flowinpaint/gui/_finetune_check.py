"""The visual before/after check of a repair fine-tune: one held-out test repair, as it was
scored for the verdict (:class:`~napari_flowinpaint.tasks.training.RepairExample`), shown as
four image layers side by side to the right of the stack: the damaged crop, its repair with
the starting weights (*before*), with the fine-tuned weights (*after*) and the truth, with a
caption over each. They are 2-D, so they show on every slice, and they are result layers
(never offered as an input); a new run shows its own in them. The active layer (the mask being
painted) stays active."""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Points

from ._common import RESULT_TAG

__all__ = ["CHECK_PANELS", "CHECK_PREFIX", "check_layers", "check_note", "show_check"]

#: The name every layer of the check starts with.
CHECK_PREFIX = "fine-tune check: "
#: The panels, left to right: (name, attribute of the RepairExample).
CHECK_PANELS = (("damaged", "damaged"), ("before", "before"), ("after", "after"),
                ("truth", "truth"))
_TAG = "finetune_check"  # metadata key of the check's layers


def check_layers(viewer) -> list:
    """The check's layers in ``viewer`` (panels and captions), bottom to top."""
    return [layer for layer in viewer.layers if _TAG in layer.metadata]


def _caption(name: str, example) -> str:
    psnr = {"before": example.psnr_before, "after": example.psnr_after}.get(name)
    return name + ("" if psnr is None else f" {psnr:.1f} dB")


def show_check(viewer, image: Image, example) -> list[Image]:
    """Show ``example`` (a ``RepairExample`` with both repairs) beside ``image``, in place of
    an earlier check; returns the four panels (damaged, before, after, truth).

    The panels sit in a row to the right of the image, level with the crop's rows, in the
    image's pixel size and contrast; the captions name each one (with its PSNR in the hole
    for the two repairs) and where the crop comes from. An earlier check's layers are
    updated rather than replaced (napari takes about half a second to remove a layer)."""
    layers = viewer.layers
    active, selected = layers.selection.active, set(layers.selection)
    earlier = {layer.name: layer for layer in check_layers(viewer)}
    names = [CHECK_PREFIX + name for name, _ in CHECK_PANELS] + [CHECK_PREFIX + "captions"]
    if sorted(earlier) != sorted(names):  # none, or a part of one: made again
        for layer in earlier.values():
            layers.remove(layer)
        earlier = {}
    scale = np.asarray(image.scale[-2:], float)
    origin = np.asarray(image.translate[-2:], float)
    h, w = example.truth.shape
    gap = max(8, w // 5)  # room for the captions at the zoom that shows the whole stack
    x0 = image.data.shape[-1] + gap
    where = f"slice {example.z}, rows {example.y}-{example.y + h - 1}, columns " \
            f"{example.x}-{example.x + w - 1}"
    meta = {RESULT_TAG: image.name, _TAG: where}
    display = dict(contrast_limits=image.contrast_limits, colormap=image.colormap,
                   gamma=image.gamma, scale=scale, metadata=meta)
    panels, corners = [], []
    for name, attribute in CHECK_PANELS:
        corner = (example.y, x0 + len(panels) * (w + gap))
        data, where_to = np.asarray(getattr(example, attribute)), origin + scale * corner
        panel = earlier.get(CHECK_PREFIX + name)
        if panel is None:
            panel = Image(data, name=CHECK_PREFIX + name, translate=where_to, **display)
            layers.insert(len(panels), panel)  # at the bottom: nothing painted is covered
        else:
            panel.data, panel.translate = data, where_to
            for key, value in display.items():
                setattr(panel, key, value)
        panels.append(panel)
        corners.append(corner)
    features = {"caption": [_caption(n, example) for n, _ in CHECK_PANELS]}
    captions = earlier.get(CHECK_PREFIX + "captions")
    if captions is None:
        captions = Points(np.asarray(corners, float), name=CHECK_PREFIX + "captions", size=0,
                          scale=scale, translate=origin, features=features,
                          text={"string": "{caption}", "color": "white", "size": 8,
                                "anchor": "upper_left"}, metadata=meta)
        layers.insert(len(panels), captions)
    else:
        captions.scale, captions.translate, captions.metadata = scale, origin, meta
        captions.data = np.asarray(corners, float)
        captions.features = features
    layers.selection.clear()  # what was selected stays so (the mask, to go on painting)
    layers.selection.update({layer for layer in selected if layer in layers})
    if active is not None and active in layers:
        layers.selection.active = active
    return panels


def check_note(viewer, image, result) -> str:
    """Show the before/after check of a finished repair fine-tune ``result`` beside
    ``image`` (:func:`show_check`) and say where it is, or ``""`` when there is none (the
    detector's runs, a run stopped before both scores, an image no longer in the viewer)."""
    example = getattr(result, "example", None)
    if example is None or example.after is None or image is None or image not in viewer.layers:
        return ""
    show_check(viewer, image, example)
    return (f" Before/after of one test repair (slice {example.z}): the '{CHECK_PREFIX}...' "
            "layers, right of the stack.")
