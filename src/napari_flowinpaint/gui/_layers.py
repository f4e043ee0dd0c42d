"""The Repair widget's layer picking: the image and mask choices, the slice index that follows
the viewer's slider (and moves it), the image checks, and **New mask** (a numpy mask, or for
a big lazy image one over a temporary zarr array, which napari paints into)."""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels

from ..engine import SUPPORTED_DTYPES
from ._common import ImageChoiceMixin, spatial_kwargs
from ._view import is_big_lazy, temporary_zarr

__all__ = ["LayerPickingMixin", "MASK_TAG", "is_damage_mask"]

#: Metadata key marking the Labels layers this plugin made as damage masks (New mask,
#: Auto-detect): only those are picked without the user choosing them.
MASK_TAG = "flowinpaint_damage_mask"


def is_damage_mask(layer) -> bool:
    """Whether ``layer`` is a damage mask made by the Repair widget."""
    return isinstance(layer, Labels) and bool(layer.metadata.get(MASK_TAG))


class LayerPickingMixin(ImageChoiceMixin):
    """Picks the image and the damage mask and follows the viewer's z slider.

    Expects the widget to hold the viewer (``self._viewer``), the image and mask combo boxes
    (``self._image``, ``self._mask``), the slice spin box (``self._z``) and a ``_syncing``
    flag (False), and to provide ``_set_status`` and ``_warn``
    (:class:`~napari_flowinpaint.gui._common.StatusMixin`). The widget watches the viewer's
    layers (:meth:`_watch_layers`), connects its dims ``current_step`` event to
    :meth:`_follow_viewer`, the image box to :meth:`_on_image_changed` and the spin box to
    :meth:`_on_z_changed`.
    """

    # ------------------------------------------------------------------ public state
    @property
    def mask_layer(self) -> Labels | None:
        """The Labels layer marking damage (nonzero = damaged)."""
        return self._mask.value

    @mask_layer.setter
    def mask_layer(self, layer: Labels | None) -> None:
        self._mask.value = layer

    @property
    def z(self) -> int:
        """Index (data coordinates) of the section that **Repair slice** repairs."""
        return int(self._z.value)

    @z.setter
    def z(self, value: int) -> None:
        self._z.value = int(value)

    # ------------------------------------------------------------------ layer choices
    def _on_image_changed(self, image) -> None:
        shape = None if image is None else tuple(image.data.shape)
        self._z.max = shape[0] - 1 if shape is not None and len(shape) == 3 else 0
        mask = self._mask.value
        if shape is not None and (mask is None or tuple(mask.data.shape) != shape):
            # only a mask this widget made is taken unasked: any other Labels layer (a
            # segmentation...) must be chosen by the user
            fits = [layer for _, layer in self._labels_choices()
                    if tuple(layer.data.shape) == shape and is_damage_mask(layer)]
            named = [layer for layer in fits if layer.name.startswith(f"{image.name} damage")]
            self._mask.value = (named or fits)[-1] if (named or fits) else None
        self._follow_viewer()

    def use_selection(self) -> None:
        """Take the image and the mask from the viewer's active layer, when it is one."""
        active = self._viewer.layers.selection.active
        if isinstance(active, Image):
            self._image.value = active
        elif isinstance(active, Labels):
            self._mask.value = active
            image = self._image.value
            if image is None or tuple(image.data.shape) != tuple(active.data.shape):
                fits = [layer for _, layer in self._image_choices()
                        if tuple(layer.data.shape) == tuple(active.data.shape)]
                if fits:
                    self._image.value = fits[0]

    # ------------------------------------------------------------------ slice index sync
    def _follow_viewer(self, _event=None) -> None:
        image = self._image.value
        if self._syncing or image is None or image.ndim != 3 or self._viewer.dims.ndim < 3:
            return
        z = int(np.round(image.world_to_data(self._viewer.dims.point)[0]))
        self._syncing = True
        try:
            self._z.value = int(np.clip(z, self._z.min, self._z.max))
        finally:
            self._syncing = False

    def _on_z_changed(self, z) -> None:
        image = self._image.value
        if self._syncing or image is None or image.ndim != 3:
            return
        axis = self._viewer.dims.ndim - 3
        world = image.data_to_world([int(z), 0, 0])[0]
        self._syncing = True
        try:
            self._viewer.dims.set_point(axis, world)
        finally:
            self._syncing = False

    # ------------------------------------------------------------------ image check, new mask
    def _checked_image(self) -> Image | None:
        image = self._image.value
        if image is None:
            self._warn("No image layer: open a 3-D stack (or File > Open Sample > FIB-SEM "
                       "medulla sample) and pick it in the widget.")
            return None
        if image.rgb:
            self._warn(f"'{image.name}' is an RGB image; EM images must be grayscale. "
                       "Convert it to one channel first.")
            return None
        if image.multiscale:
            self._warn(f"'{image.name}' is multiscale; open its full-resolution level as a "
                       "single-scale image to repair it.")
            return None
        if image.ndim != 3:
            what = "a single 2-D slice" if image.ndim == 2 else f"{image.ndim}-D"
            self._warn(f"'{image.name}' is {what} (shape {tuple(image.data.shape)}); repair "
                       "needs a 3-D stack (z, y, x) whose neighbouring slices guide it.")
            return None
        if image.data.shape[0] < 2:
            self._warn(f"'{image.name}' has a single slice; there is no neighbour to "
                       "repair from.")
            return None
        dtype = np.dtype(image.data.dtype)
        if dtype.type not in SUPPORTED_DTYPES:
            self._warn(f"'{image.name}' holds {dtype} data, which cannot be repaired; convert "
                       "it to uint8, uint16 or float32 first (e.g. in Fiji: Image > Type).")
            return None
        return image

    def new_mask(self) -> Labels | None:
        """Add an empty damage mask for the image, select it and switch to painting.

        The mask is a numpy array, or for a lazy (dask, zarr) image bigger than
        :data:`~napari_flowinpaint.gui._view.LAZY_BYTES` a zarr array in a temporary folder
        (deleted once the layer is gone), so that it never has to fit in memory.
        """
        image = self._checked_image()
        if image is None:
            return None
        shape = tuple(image.data.shape)
        on_disk = is_big_lazy(image.data)
        data = (temporary_zarr(shape, np.uint8, "mask.zarr") if on_disk
                else np.zeros(shape, dtype=np.uint8))
        labels = Labels(data, name=f"{image.name} damage mask", opacity=0.6,
                        metadata={MASK_TAG: True}, **spatial_kwargs(image))
        labels = self._viewer.add_layer(labels)
        self.reset_choices()
        self._mask.value = labels
        self._viewer.layers.selection.active = labels
        labels.selected_label = 1
        labels.brush_size = int(np.clip(min(shape[1:]) // 40, 5, 40))
        labels.mode = "paint"
        where = (" It is kept on disk in a temporary folder: the image is too big for a mask "
                 "in memory." if on_disk else "")
        self._set_status(f"Paint the damage on '{labels.name}' (label 1), then press Repair "
                         "slice." + where)
        return labels
