"""The Repair widget's result layers: ``"<image> repaired"`` (a lazy view of the image with
the repaired slices put in, shown over the image) and ``"<image> confidence"`` (where the
repair can be trusted, an overlay that is off until **show confidence** is ticked), and the two
check boxes that show or hide them (before/after). The damage mask always stays above them,
visible and paintable; a mask the widget made is drawn as outlines once there is a repair,
so that the repair shows through it."""

from __future__ import annotations

import weakref

import numpy as np
from napari.layers import Image
from napari.utils.colormaps import Colormap

from ._common import RESULT_TAG, spatial_kwargs
from ._layers import is_damage_mask
from ._view import RepairedView, is_big_lazy

__all__ = ["CONFIDENCE_COLORMAP", "CONFIDENCE_OPACITY", "ConfidenceReadOut",
           "ResultLayersMixin"]

#: Low confidence in opaque red, through translucent yellow, to fully transparent at 1: the
#: overlay marks only what deserves a second look.
CONFIDENCE_COLORMAP = Colormap(
    colors=[[0.9, 0.05, 0.05, 0.85], [1.0, 0.85, 0.1, 0.45], [1.0, 1.0, 0.4, 0.0]],
    controls=[0.0, 0.6, 1.0], name="flowinpaint confidence")
#: Opacity of the confidence overlay: the repair it describes stays visible under its red.
CONFIDENCE_OPACITY = 0.6


class ConfidenceReadOut:
    """The hover read-out of the mask with the confidence under the cursor appended
    (``"...: 1; confidence 0.42"``), while the overlay is shown.

    napari's status bar reads the active layer, the mask (kept active to go on painting);
    an instance of this class stands in for that layer's ``get_status`` (:meth:`attach`,
    undone by :meth:`detach`), so that the value shown is the confidence, not only the
    mask's label.
    """

    def __init__(self, mask, overlay):
        self._own = type(mask).get_status.__get__(mask)
        self._overlay = weakref.ref(overlay)

    def __call__(self, position=None, **kwargs) -> dict:
        status = self._own(position, **kwargs)
        overlay = self._overlay()
        if overlay is None or not overlay.visible or position is None:
            return status
        try:
            value = overlay.get_value(position, view_direction=kwargs.get("view_direction"),
                                      dims_displayed=kwargs.get("dims_displayed"),
                                      world=kwargs.get("world", False))
        except (IndexError, ValueError):  # outside the overlay, or not sliced yet
            return status
        if value is not None and np.isscalar(value):
            status["coordinates"] = f"{status.get('coordinates', '')}; confidence {value:.2f}"
        return status

    @classmethod
    def attach(cls, mask, overlay) -> None:
        cls.detach(mask)
        mask.get_status = cls(mask, overlay)

    @staticmethod
    def detach(mask) -> None:
        if isinstance(mask.__dict__.get("get_status"), ConfidenceReadOut):
            del mask.get_status


class ResultLayersMixin:
    """Makes, places and toggles the result layers of an image.

    Expects the viewer in ``self._viewer``, the mask box in ``self._mask`` and the check
    boxes ``self._show_result`` and ``self._show_confidence``.
    """

    def _find(self, image: Image, suffix: str) -> Image | None:
        name = f"{image.name} {suffix}"
        for layer in self._viewer.layers:
            if (layer.name == name and isinstance(layer, Image)
                    and tuple(layer.data.shape) == tuple(image.data.shape)):
                return layer
        return None

    def _find_result(self, image: Image) -> Image | None:
        """The ``"<image> repaired"`` layer of ``image``, if the viewer holds one."""
        return self._find(image, "repaired")

    def _add_view(self, image: Image, view: RepairedView, suffix: str, **display) -> Image:
        """Add ``view`` as ``"<image> <suffix>"`` over the image (and its repaired layer) but
        under the damage mask, keeping the active layer (the mask, to go on painting)."""
        # made hidden, so that napari reads nothing before it is placed at the viewer's slice
        layer = Image(view, name=f"{image.name} {suffix}", rgb=False, visible=False,
                      metadata={RESULT_TAG: image.name}, **display,
                      **spatial_kwargs(image))
        layers = self._viewer.layers
        active = layers.selection.active
        below = [x for x in (image, self._find_result(image)) if x in layers]
        layers.insert(max(map(layers.index, below)) + 1 if below else len(layers), layer)
        mask = self._mask.value
        if mask is not None and mask in layers:
            if layers.index(mask) < layers.index(layer):  # the mask stays on top
                layers.move(layers.index(mask), len(layers))
            if is_damage_mask(mask) and not mask.contour:
                mask.contour = 2  # outlines: the repair shows through, the paint stays seen
        if active is not None and active in layers:
            layers.selection.active = active
        return layers[layer.name]

    def _result_layer(self, image: Image) -> Image:
        """The ``"<image> repaired"`` layer, created on first use as a lazy view of the image
        (:class:`~napari_flowinpaint.gui._view.RepairedView`) over the image and its mask;
        the repaired sections of a big lazy image are kept on disk from the first one."""
        found = self._find_result(image)
        if found is not None:
            return found
        view = RepairedView(image.data, spill_bytes=0 if is_big_lazy(image.data) else None)
        result = self._add_view(image, view, "repaired", contrast_limits=image.contrast_limits,
                                colormap=image.colormap, gamma=image.gamma)
        result.visible = self._show_result.value
        return result

    def _confidence_layer(self, image: Image, *, create: bool) -> Image | None:
        """The ``"<image> confidence"`` layer (ones where nothing was repaired), made on
        first use when ``create``."""
        found = self._find(image, "confidence")
        if found is not None or not create:
            return found
        import dask.array as da

        shape = tuple(image.data.shape)
        ones = da.ones(shape, dtype=np.float32, chunks=(1, *shape[1:]))
        view = RepairedView(ones, spill_bytes=0 if is_big_lazy(image.data) else None)
        layer = self._add_view(image, view, "confidence", contrast_limits=(0.0, 1.0),
                               colormap=CONFIDENCE_COLORMAP, blending="translucent",
                               opacity=CONFIDENCE_OPACITY)
        layer.visible = bool(self._show_confidence.value)
        layer.colorbar.visible = layer.visible  # the legend: red = least sure, clear = sure
        if layer.visible and self._mask.value is not None:
            ConfidenceReadOut.attach(self._mask.value, layer)
        return layer

    def _put_confidence(self, image: Image, z: int, confidence) -> None:
        """Keep the confidence map of slice ``z``; the layer exists from the first repair
        (hidden until **show confidence** is ticked)."""
        layer = getattr(self, "_confidence", None)
        if layer is None:
            layer = self._confidence = self._confidence_layer(image, create=True)
        elif layer not in self._viewer.layers:  # removed during the run: not made again
            return
        layer.data[z] = confidence
        layer.refresh()

    def _on_show_result(self, show: bool) -> None:
        image = self._image.value
        layer = None if image is None else self._find_result(image)
        if layer is not None:
            layer.visible = bool(show)
        self._set_status(("Showing the repaired slices." if show else
                          "Showing the original slices (tick show repaired to compare).")
                         if layer is not None else
                         "Nothing repaired yet: repair a slice first.")

    def _on_show_confidence(self, show: bool) -> None:
        image = self._image.value
        layer = None if image is None else self._confidence_layer(image, create=False)
        if layer is not None:
            layer.visible = layer.colorbar.visible = bool(show)
        mask = self._mask.value
        if mask is not None:  # the read-out under the cursor gives the confidence too
            if show and layer is not None:
                ConfidenceReadOut.attach(mask, layer)
            else:
                ConfidenceReadOut.detach(mask)
        if show:
            self._set_status("Red marks where the repair is least reliable: check those "
                             "places against the neighbouring slices (the status bar gives "
                             "the confidence under the cursor)." if layer is not None
                             else "Nothing repaired yet: the confidence shows after a repair.")
