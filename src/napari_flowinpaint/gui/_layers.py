"""The Repair widget's layer picking: the image and mask choices, the slice index that follows
the viewer's slider (and moves it), the image checks, and **New mask** (a numpy mask, or for
a big lazy image one over a temporary zarr array, which napari paints into)."""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels

from ._common import ImageChoiceMixin, image_problem, spatial_kwargs
from ._view import is_big_lazy, temporary_zarr

__all__ = ["LayerPickingMixin", "MASK_TAG", "PROPOSED", "STROKES", "is_damage_mask",
           "made_for", "painted_question", "sections_edited"]

#: Metadata key marking the Labels layers this plugin made as damage masks (New mask,
#: Auto-detect), holding the name of the image the mask was made for: only those are picked
#: without the user choosing them, and only for that image.
MASK_TAG = "flowinpaint_damage_mask"
#: Metadata keys of a mask: the sections Auto-detect added its proposals to, and those the
#: user painted on (brush, fill, eraser) while a Repair widget watched.
PROPOSED, STROKES = "flowinpaint_proposed", "flowinpaint_strokes"


def is_damage_mask(layer) -> bool:
    """Whether ``layer`` is a damage mask made by the Repair widget."""
    return isinstance(layer, Labels) and bool(layer.metadata.get(MASK_TAG))


def made_for(layer) -> str | None:
    """The name of the image the damage mask ``layer`` was made for (None: not known)."""
    tag = layer.metadata.get(MASK_TAG) if isinstance(layer, Labels) else None
    return tag if isinstance(tag, str) else None


def sections_edited(atoms, n: int) -> set[int]:
    """The sections (first axis, of ``n``) that a Labels ``paint`` event's undo atoms changed:
    napari's masked atoms (``slice_key``) or ``(indices, old, new)`` tuples."""
    zs: set[int] = set()
    for atom in atoms or ():
        key = getattr(atom, "slice_key", None)
        first = key[0] if key is not None else atom[0][0]
        if isinstance(first, slice):
            zs.update(range(n)[first])
        else:
            zs.update(int(z) % n for z in np.unique(np.asarray(first)).ravel())
    return zs


def painted_question(mask: str, strokes: list[int], earlier: list[int]) -> str:
    """What Auto-detect asks before adding to slices of ``mask`` that already hold paint:
    ``strokes`` holds the user's, ``earlier`` only an earlier Auto-detect proposal."""

    def named(zs, one, many):
        shown = ", ".join(map(str, zs[:10])) + (" ..." if len(zs) > 10 else "")
        return f"{one if len(zs) == 1 else many} {shown}"

    if strokes and earlier:
        return (f"{named(strokes, 'Slice', 'Slices')} of '{mask}' hold{'s' * (len(strokes) == 1)}"
                f" damage you painted, and {named(earlier, 'slice', 'slices')} an earlier "
                "Auto-detect proposal. Add the detected damage there too (nothing there is "
                "erased), or skip those slices?")
    if earlier:
        return (f"{named(earlier, 'Slice', 'Slices')} of '{mask}' already "
                f"hold{'s' * (len(earlier) == 1)} an earlier Auto-detect proposal. Add the "
                "new proposal there too (the earlier one is kept), or skip those slices?")
    return (f"{named(strokes, 'Slice', 'Slices')} of '{mask}' already "
            f"hold{'s' * (len(strokes) == 1)} painted damage. Add the detected damage there "
            "too (your strokes are kept), or skip those slices?")


class LayerPickingMixin(ImageChoiceMixin):
    """Picks the image and the damage mask and follows the viewer's z slider.

    Expects the widget to hold the viewer (``self._viewer``), the image and mask combo boxes
    (``self._image``, ``self._mask``), the slice spin box (``self._z``) and a ``_syncing``
    flag (False), and to provide ``_set_status`` and ``_warn``
    (:class:`~napari_flowinpaint.gui._common.StatusMixin`), and ``_paint_watched`` (a list)
    and ``_told_paint`` (a set), empty. The widget watches the viewer's layers
    (:meth:`_watch_layers`; :meth:`_watch_paint` on each change), connects its dims
    ``current_step`` event to :meth:`_follow_viewer`, the image box to
    :meth:`_on_image_changed` and the spin box to :meth:`_on_z_changed`.
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
        self._mask.reset_choices()  # only the Labels layers of the image's shape
        mask = self._mask.value
        if shape is not None and (mask is None or tuple(mask.data.shape) != shape
                                  or made_for(mask) not in (None, image.name)):
            # only a mask this widget made for this image is taken unasked: any other
            # Labels layer (a segmentation, another image's mask...) must be chosen by the user
            fits = [layer for _, layer in self._labels_choices() if is_damage_mask(layer)
                    and made_for(layer) in (None, image.name)]
            named = [layer for layer in fits if made_for(layer) == image.name
                     or layer.name.startswith(f"{image.name} damage")]
            self._mask.value = named[-1] if named else None
        self._follow_viewer()

    def use_selection(self) -> None:
        """Take the image and the mask from the viewer's active layer, when it is one."""
        active = self._viewer.layers.selection.active
        if isinstance(active, Image) and self.accepts_image(active):
            self._image.value = active
        elif isinstance(active, Labels):
            image = self._image.value
            if image is None or tuple(image.data.shape) != tuple(active.data.shape):
                fits = [layer for _, layer in self._image_choices()
                        if tuple(layer.data.shape) == tuple(active.data.shape)]
                if fits:
                    self._image.value = fits[0]
            if active in [layer for _, layer in self._labels_choices()]:
                self._mask.value = active

    # ------------------------------------------------------------------ paint elsewhere
    # Strokes reach the widget through each Labels layer's ``paint`` event: they are
    # remembered per section (so that Auto-detect can tell them from its own proposals),
    # and paint on a Labels layer of the image's shape that is not the damage mask is
    # never ignored silently: with no mask yet it becomes the mask, else the user is told.
    _own_edit = False

    def _watch_paint(self) -> None:
        watched = self._paint_watched
        for layer in self._viewer.layers:
            if isinstance(layer, Labels) and not any(layer is w for w in watched):
                layer.events.paint.connect(self._on_paint)
                watched.append(layer)
        watched[:] = [w for w in watched if w in self._viewer.layers]

    def _unwatch_paint(self) -> None:
        watched, self._paint_watched = self._paint_watched, []
        for layer in watched:
            layer.events.paint.disconnect(self._on_paint)

    def _on_paint(self, event) -> None:
        layer = event.source
        if self._own_edit or not isinstance(layer, Labels) or layer.ndim != 3:
            return  # Auto-detect's own proposal, committed as one undo step
        zs = sections_edited(event.value, int(layer.data.shape[0]))
        layer.metadata[STROKES] = sorted(set(layer.metadata.get(STROKES, ())) | zs)
        image, mask = self._image.value, self._mask.value
        if (image is None or layer is mask
                or tuple(layer.data.shape) != tuple(image.data.shape)):
            return
        if mask is None:
            self._mask.value = layer
            self._set_status(f"'{layer.name}' is the damage mask now (you painted on it); "
                             "press Repair slice when the damage is covered.")
            return
        if layer.name not in self._told_paint:
            self._told_paint.add(layer.name)
            self._warn(f"You painted on '{layer.name}', but the damage mask is '{mask.name}': "
                       f"pick '{layer.name}' in 'damage mask' to repair with that paint.")

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
            why = self._not_offered()
            self._warn("No image layer: open a 3-D stack (or File > Open Sample > FIB-SEM "
                       "medulla sample) and pick it in the widget."
                       + (f" Not offered: {why}" if why else ""))
            return None
        problem = image_problem(image)  # its data may have changed since it was offered
        if problem is not None:
            self._warn(problem)
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
                        metadata={MASK_TAG: image.name}, **spatial_kwargs(image))
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
