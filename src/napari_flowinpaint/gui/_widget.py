"""The "Repair section" dock widget: paint the damage, repair one section or all of them.

The widget only gathers inputs, checks them and shows results; the repair itself is
:func:`napari_flowinpaint.tasks.stack.repair_slice` and
:func:`~napari_flowinpaint.tasks.stack.iter_repair_stack`, run in a worker thread so the
viewer stays responsive.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, SpinBox
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ..engine import FlowInpainter
from ..tasks.detect import iter_detect_damage
from ..tasks.stack import damaged_z, find_neighbours, iter_repair_stack, repair_slice

__all__ = ["RepairWidget"]

_log = logging.getLogger(__name__)

#: What the tasks layer raises for inputs it cannot repair (shown as a notification).
_INPUT_ERRORS = (ValueError, TypeError, IndexError)

#: Spatial properties a derived layer copies from its source so both overlay exactly.
_SPATIAL = ("scale", "translate", "rotate", "shear", "affine", "units")


def _spatial_kwargs(layer) -> dict:
    return {key: getattr(layer, key) for key in _SPATIAL if hasattr(layer, key)}


def _reason(exc: Exception) -> str:
    """The message for a failed section: the tasks layer's own words for bad input, the
    exception type too (and the traceback in the log) for anything unexpected."""
    if isinstance(exc, _INPUT_ERRORS):
        return str(exc)
    _log.error("repair failed", exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


def _describe(z: int, z_prev, z_next, method: str, seconds: float) -> str:
    sources = [str(n) for n in (z_prev, z_next) if n is not None]
    return (f"slice {z} repaired from {' and '.join(sources)} by {method} "
            f"in {seconds:.2f} s")


class _StatusMixin:
    """What both dock widgets share: a status label (``self._status``) and a background
    worker (``self.worker``, None when idle)."""

    @property
    def status(self) -> str:
        """The last status message shown in the widget."""
        return self._status.value

    @property
    def running(self) -> bool:
        """True while work runs in the background."""
        return self.worker is not None

    def _set_status(self, text: str) -> None:
        try:
            self._status.value = text
        except RuntimeError:  # the widget was closed while a worker ran: nothing to show
            pass

    def _warn(self, text: str) -> None:
        self._set_status(text)
        show_warning(text)


class RepairWidget(_StatusMixin, Container):
    """Dock widget repairing damaged sections of a 3-D image layer from its neighbours.

    Pick the image (a 3-D grayscale stack) and a damage mask (a Labels layer of the same
    shape, nonzero = damaged; **New mask** makes an empty one ready to paint), then
    **Repair slice** repairs the section shown in the viewer and **Repair all masked
    slices** every section with paint on it. Results go into an image layer named
    ``"<image> repaired"``: a copy of the stack whose repaired sections are replaced, updated
    in place by later repairs. The image and the mask are never modified.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose layers the widget works on (napari passes it in).
    inpainter : FlowInpainter, optional, keyword-only
        The engine to use. By default one is created on the first repair (in the worker
        thread, so a slow start does not freeze the viewer) and reused afterwards.
    """

    def __init__(self, napari_viewer, *, inpainter: FlowInpainter | None = None):
        self._viewer = napari_viewer
        self._inpainter = inpainter
        self._weights = None
        self._engine_lock = threading.Lock()
        self._syncing = False
        self._batch: dict = {}
        self._target = None
        self._detect_run: dict = {}
        #: Asked before Auto-detect adds to slices the user painted: called with the
        #: question, returns "add", "skip" or "cancel". Replaced in tests.
        self.ask = self._ask_dialog
        self.worker = None  # the running worker, if any (napari.qt.threading.GeneratorWorker)

        self._image = ComboBox(name="image_choice", label="image",
                               choices=self._image_choices, nullable=True,
                               tooltip="3-D grayscale stack (z, y, x) to repair")
        self._mask = ComboBox(name="mask_choice", label="damage mask",
                              choices=self._mask_choices, nullable=True,
                              tooltip="Labels layer of the image's shape; nonzero = damaged")
        self._new_mask = PushButton(name="new_mask_button", text="New mask",
                                    tooltip="Add an empty damage mask and start painting")
        self._z = SpinBox(name="slice_index", label="slice (z)", min=0, max=0,
                          tooltip="Section to repair; follows the viewer's slider")
        self._detect_scope = ComboBox(name="detect_scope", label="auto-detect on",
                                      choices=["current slice", "all slices"],
                                      value="current slice",
                                      tooltip="Where Auto-detect proposes damage")
        self._grow = SpinBox(name="detect_grow", label="grow (px)", min=0, max=100, value=2,
                             tooltip="Margin added around detected damage")
        self._detect = PushButton(name="detect_button", text="Auto-detect",
                                  tooltip="Propose a damage mask; then correct it with the "
                                          "brush and eraser. Painted strokes are kept.")
        self._repair = PushButton(name="repair_button", text="Repair slice")
        self._repair_all = PushButton(name="repair_all_button",
                                      text="Repair all masked slices")
        self._cancel = PushButton(name="cancel_button", text="Cancel", enabled=False,
                                  tooltip="Stop after the current section; finished ones are kept")
        self._status = Label(name="status_label", label="status",
                             value="Pick an image, press New mask and paint the damage.")
        super().__init__(widgets=[self._image, self._mask, self._new_mask, self._z,
                                  self._detect_scope, self._grow, self._detect, self._repair,
                                  self._repair_all, self._cancel, self._status])
        self._status.native.setWordWrap(True)

        self._image.changed.connect(self._on_image_changed)
        self._z.changed.connect(self._on_z_changed)
        self._new_mask.changed.connect(self.new_mask)
        self._detect.changed.connect(self.auto_detect)
        self._repair.changed.connect(self.repair_current_slice)
        self._repair_all.changed.connect(self.repair_all)
        self._cancel.changed.connect(self.cancel)
        layer_events = self._viewer.layers.events
        for event in (layer_events.inserted, layer_events.removed, layer_events.reordered):
            event.connect(self._on_layers_changed)
        self._viewer.dims.events.current_step.connect(self._follow_viewer)
        self._on_layers_changed()
        self._on_image_changed(self._image.value)

    # ------------------------------------------------------------------ public state
    @property
    def image_layer(self) -> Image | None:
        """The image layer being repaired."""
        return self._image.value

    @image_layer.setter
    def image_layer(self, layer: Image | None) -> None:
        self._image.value = layer

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

    @property
    def inpainter(self) -> FlowInpainter:
        """The engine, created on first use and then reused."""
        with self._engine_lock:
            if self._inpainter is None:
                self._inpainter = FlowInpainter(weights=self._weights)
            return self._inpainter

    def set_weights(self, weights) -> None:
        """Repair with these weights from now on (e.g. from the *Fine-tune weights* widget).

        Parameters
        ----------
        weights : str or Path or None
            A weights file (``.safetensors``); None for the bundled weights. The engine is
            built with them on the next repair; a repair already running finishes as it began.
        """
        with self._engine_lock:
            self._weights = weights
            self._inpainter = None
        self._set_status(f"Repairs will use the weights {weights or 'bundled with the plugin'}.")

    # ------------------------------------------------------------------ layer choices
    def _image_choices(self, _widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _mask_choices(self, _widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers
                if isinstance(layer, Labels)]

    def _on_layers_changed(self, _event=None) -> None:
        self.reset_choices()
        if self._image.value is None:  # take the active image, else the top-most one
            active = self._viewer.layers.selection.active
            images = [layer for _, layer in self._image_choices()]
            if images:
                self._image.value = active if isinstance(active, Image) else images[-1]

    def _on_image_changed(self, image) -> None:
        shape = None if image is None else tuple(image.data.shape)
        self._z.max = shape[0] - 1 if shape is not None and len(shape) == 3 else 0
        mask = self._mask.value
        if shape is not None and (mask is None or tuple(mask.data.shape) != shape):
            fits = [layer for _, layer in self._mask_choices()
                    if tuple(layer.data.shape) == shape]
            named = [layer for layer in fits if layer.name.startswith(f"{image.name} damage")]
            if named or fits:
                self._mask.value = (named or fits)[-1]
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

    # ------------------------------------------------------------------ input checks
    def _checked_image(self) -> Image | None:
        image = self._image.value
        if image is None:
            self._warn("No image layer: open a 3-D stack (or File > Open Sample > FlowInpaint) "
                       "and pick it in the widget.")
            return None
        if image.rgb:
            self._warn(f"'{image.name}' is an RGB image; EM sections must be grayscale. "
                       "Convert it to one channel first.")
            return None
        if image.multiscale:
            self._warn(f"'{image.name}' is multiscale; open its full-resolution level as a "
                       "single-scale image to repair it.")
            return None
        if image.ndim != 3:
            what = "a single 2-D section" if image.ndim == 2 else f"{image.ndim}-D"
            self._warn(f"'{image.name}' is {what} (shape {tuple(image.data.shape)}); repair "
                       "needs a 3-D stack (z, y, x) whose neighbouring sections guide it.")
            return None
        if image.data.shape[0] < 2:
            self._warn(f"'{image.name}' has a single section; there is no neighbour to "
                       "repair from.")
            return None
        return image

    def _checked_inputs(self):
        image = self._checked_image()
        if image is None:
            return None
        mask = self._mask.value
        if mask is None:
            self._warn("No damage mask: press New mask and paint the damaged pixels.")
            return None
        if tuple(mask.data.shape) != tuple(image.data.shape):
            self._warn(f"The mask '{mask.name}' has shape {tuple(mask.data.shape)} but the "
                       f"image '{image.name}' has shape {tuple(image.data.shape)}; pick a mask "
                       "of the image's shape or press New mask.")
            return None
        if self.running:
            self._warn("A repair is already running; wait for it or press Cancel.")
            return None
        return image, mask

    # ------------------------------------------------------------------ actions
    def new_mask(self) -> Labels | None:
        """Add an empty damage mask for the image, select it and switch to painting."""
        image = self._checked_image()
        if image is None:
            return None
        shape = tuple(image.data.shape)
        labels = Labels(np.zeros(shape, dtype=np.uint8), name=f"{image.name} damage mask",
                        opacity=0.6, **_spatial_kwargs(image))
        labels = self._viewer.add_layer(labels)
        self.reset_choices()
        self._mask.value = labels
        self._viewer.layers.selection.active = labels
        labels.selected_label = 1
        labels.brush_size = int(np.clip(min(shape[1:]) // 40, 5, 40))
        labels.mode = "paint"
        self._set_status(f"Paint the damage on '{labels.name}' (label 1), then press Repair.")
        return labels

    def repair_current_slice(self) -> None:
        """Repair section :attr:`z` of the image where the mask is painted, in the background."""
        checked = self._checked_inputs()
        if checked is None:
            return
        image, mask = checked
        z = self.z
        damage = np.array(mask.data[z], dtype=bool)  # a snapshot: painting may go on
        if not damage.any():
            self._warn(f"No damage is painted on slice {z} of '{mask.name}': paint the damaged "
                       "pixels there first, or move to a painted slice.")
            return
        masks = self._snapshot(mask.data)
        self._start(self._repair_one, image, image.data, z, damage, masks, total=1,
                    desc=f"Repairing slice {z}")

    def repair_all(self) -> None:
        """Repair every section whose mask has paint on it, one by one in the background.

        Progress shows in napari's activity panel; **Cancel** stops after the current
        section and keeps the sections finished so far.
        """
        checked = self._checked_inputs()
        if checked is None:
            return
        image, mask = checked
        masks = self._snapshot(mask.data)
        todo = damaged_z(masks)
        if not todo:
            self._warn(f"No damage is painted anywhere in '{mask.name}': paint the damaged "
                       "pixels first.")
            return
        self._batch = {"todo": todo, "done": [], "t0": time.perf_counter()}
        self._start(self._repair_many, image, image.data, masks, todo, total=len(todo),
                    desc=f"Repairing {len(todo)} slices")

    def auto_detect(self, scope: str | None = None) -> None:
        """Propose damage with :func:`~napari_flowinpaint.tasks.detect.detect_damage` and add
        it to the mask (label 1), on the current slice or on all slices, in the background.

        Detected pixels are only added: strokes already painted are never erased. Before
        adding to other slices that already hold paint, :attr:`ask` asks whether to add
        there too, skip them, or cancel. Without a mask, a new one is made.
        """
        scope = scope or self._detect_scope.value
        if scope not in ("current slice", "all slices"):
            raise ValueError(f"scope must be 'current slice' or 'all slices', got {scope!r}.")
        image = self._checked_image()
        if image is None:
            return
        if self.running:
            self._warn("A job is already running; wait for it or press Cancel.")
            return
        mask = self._mask.value
        if mask is None or tuple(mask.data.shape) != tuple(image.data.shape):
            mask = self.new_mask()
        if not isinstance(mask.data, np.ndarray):
            self._warn(f"The mask '{mask.name}' is not held in memory (lazy data); press New "
                       "mask to get one Auto-detect can fill.")
            return
        zs = [self.z] if scope == "current slice" else list(range(image.data.shape[0]))
        painted = [z for z in damaged_z(mask.data) if z != self.z and z in zs]
        if painted:
            shown = ", ".join(map(str, painted[:10])) + (" ..." if len(painted) > 10 else "")
            answer = self.ask(f"Slices {shown} of '{mask.name}' already hold painted damage. "
                              "Add the detected damage there too (your strokes are kept), or "
                              "skip those slices?")
            if answer == "cancel":
                self._set_status("Auto-detect cancelled.")
                return
            if answer == "skip":
                zs = [z for z in zs if z not in set(painted)]
        self._detect_run = {"mask": mask, "zs": zs, "found": [], "done": 0,
                            "t0": time.perf_counter()}
        self._target = image
        self._set_running(True)
        desc = f"Detecting damage on {len(zs)} slice{'s' if len(zs) > 1 else ''}"
        self._set_status(f"{desc}...")
        self.worker = create_worker(
            self._detect_many, image.data, zs, int(self._grow.value),
            _progress={"total": len(zs), "desc": desc},
            _connect={"yielded": self._on_detected, "errored": self._on_errored,
                      "finished": self._on_finished},
        )

    def _ask_dialog(self, question: str) -> str:
        from qtpy.QtWidgets import QMessageBox

        box = QMessageBox(self.native)
        box.setWindowTitle("Auto-detect")
        box.setText(question)
        add = box.addButton("Add there too", QMessageBox.ButtonRole.AcceptRole)
        skip = box.addButton("Skip painted slices", QMessageBox.ButtonRole.RejectRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        clicked = box.clickedButton()
        return "add" if clicked is add else "skip" if clicked is skip else "cancel"

    def cancel(self) -> None:
        """Stop the running repair after the current section (finished ones are kept)."""
        if self.worker is not None:
            self.worker.quit()
            self._set_status("Stopping after the current slice...")

    # ------------------------------------------------------------------ worker plumbing
    @staticmethod
    def _snapshot(data):
        # An in-memory mask is copied so that painting during a run cannot change what the
        # run sees; a lazy (dask/zarr) one is read as it is, slice by slice.
        return np.array(data, copy=True) if isinstance(data, np.ndarray) else data

    # The generators below run in the worker thread and yield (z, repaired, text) per
    # section, or (z, None, reason) when a section fails. They catch every exception: the
    # worker machinery (superqt) never reports a RuntimeError, which torch raises for many
    # failures, and the widget would wait forever.
    def _repair_one(self, stack, z, damage, masks):
        t0 = time.perf_counter()
        try:
            engine = self.inpainter
            z_prev, z_next = find_neighbours(stack, z, masks=masks)
            repaired = repair_slice(stack, z, damage, masks=masks, inpainter=engine)
        except Exception as exc:  # noqa: BLE001 - reported to the user, see above
            yield z, None, _reason(exc)
            return
        yield z, repaired, _describe(z, z_prev, z_next, engine.method,
                                     time.perf_counter() - t0)

    def _repair_many(self, stack, masks, todo):
        done = 0
        try:
            engine = self.inpainter
            for z, repaired in iter_repair_stack(stack, masks, inpainter=engine, slices=todo):
                done += 1
                yield z, repaired, None
        except Exception as exc:  # noqa: BLE001 - reported to the user, see above
            yield todo[done], None, _reason(exc)

    def _detect_many(self, stack, zs, grow):
        z = zs[0] if zs else None
        try:
            for z, found in iter_detect_damage(stack, zs, grow=grow):
                yield z, found
        except Exception as exc:  # noqa: BLE001 - reported to the user, see above
            yield z, _reason(exc)

    def _on_detected(self, item) -> None:
        z, found = item
        run = self._detect_run
        if isinstance(found, str):
            run["failed"] = z
            self._set_status(f"Auto-detect failed on slice {z}: {found}")
            show_error(f"Auto-detect failed on slice {z}: {found}")
            return
        run["done"] += 1
        if found.any():
            labels = run["mask"]
            section = labels.data[z]
            section[found & (section == 0)] = 1  # add; painted labels stay as they are
            labels.refresh()
            run["found"].append(z)
        self._set_status(f"checked slice {z} ({run['done']} of {len(run['zs'])}); damage "
                         f"found on {len(run['found'])}")

    def _start(self, func, image, *args, total: int, desc: str) -> None:
        self._target = image
        self._set_running(True)
        self._set_status(f"{desc}...")
        self.worker = create_worker(
            func, *args, _progress={"total": total, "desc": desc},
            _connect={"yielded": self._on_yielded, "errored": self._on_errored,
                      "warned": self._on_warned, "finished": self._on_finished},
        )

    def _set_running(self, running: bool) -> None:
        try:
            for button in (self._new_mask, self._detect, self._repair, self._repair_all):
                button.enabled = not running
            self._cancel.enabled = running
        except RuntimeError:  # the widget was closed while a worker ran
            pass

    def _on_yielded(self, item) -> None:
        z, repaired, text = item
        if repaired is None:
            if self._batch:
                self._batch["failed"] = z
            self._set_status(f"Repair of slice {z} failed: {text}")
            show_error(f"Repair of slice {z} failed: {text}")
            return
        result = self._result_layer(self._target)
        result.data[z] = repaired
        result.refresh()
        if text is not None:
            self._set_status(text)
        else:
            self._batch["done"].append(z)
            self._set_status(f"repaired slice {z} ({len(self._batch['done'])} of "
                             f"{len(self._batch['todo'])})")

    def _on_errored(self, exc: Exception) -> None:
        # An unexpected exception (a bug): say so, and leave the traceback to the log.
        self._batch = {}
        text = f"Repair failed ({type(exc).__name__}): {exc}"
        self._set_status(text)
        show_error(text)

    def _on_warned(self, showwarning_args: tuple) -> None:
        # Warnings raised in the worker thread (e.g. a section with one usable neighbour)
        # arrive here as warnings.showwarning arguments; napari 0.9 does not relay them.
        show_warning(str(showwarning_args[0]))

    def _on_finished(self) -> None:
        batch, self._batch = self._batch, {}
        run, self._detect_run = self._detect_run, {}
        self.worker = None
        self._set_running(False)
        if run and "failed" not in run:
            found, zs = run["found"], run["zs"]
            listed = ", ".join(map(str, found[:20])) + (" ..." if len(found) > 20 else "")
            stopped = run["done"] < len(zs)
            text = (f"{'stopped: ' if stopped else ''}damage found on {len(found)} of "
                    f"{run['done']} slice{'s' if run['done'] != 1 else ''} checked"
                    + (f" ({listed})" if found else "")
                    + f" in {time.perf_counter() - run['t0']:.1f} s; correct the mask with "
                      "the brush and eraser, then repair.")
            self._set_status(text)
            show_info(text)
        if batch:
            done, todo = batch["done"], batch["todo"]
            seconds = time.perf_counter() - batch["t0"]
            listed = ", ".join(map(str, done))
            method = self._inpainter.method if self._inpainter is not None else "no method"
            if "failed" in batch:
                text = (f"stopped at slice {batch['failed']} (see the error); "
                        f"{len(done)} of {len(todo)} slices repaired ({listed})")
                self._set_status(text)
                return
            if len(done) == len(todo):
                text = (f"{len(done)} slice{'s' if len(done) > 1 else ''} repaired ({listed}) "
                        f"by {method} in {seconds:.2f} s")
            else:
                text = (f"stopped: {len(done)} of {len(todo)} slices repaired ({listed}) by "
                        f"{method}; the rest are unchanged")
            self._set_status(text)
            show_info(text)

    def _result_layer(self, image: Image) -> Image:
        """The ``"<image> repaired"`` layer, created on first use as a copy of the image."""
        name = f"{image.name} repaired"
        for layer in self._viewer.layers:
            if (layer.name == name and isinstance(layer, Image)
                    and tuple(layer.data.shape) == tuple(image.data.shape)):
                return layer
        result = Image(np.array(image.data, copy=True), name=name,
                       contrast_limits=image.contrast_limits, colormap=image.colormap,
                       gamma=image.gamma, metadata={"repaired_from": image.name},
                       **_spatial_kwargs(image))
        layers = self._viewer.layers
        active = layers.selection.active
        layers.insert(layers.index(image) + 1 if image in layers else len(layers), result)
        if active is not None and active in layers:
            layers.selection.active = active  # keep painting on the mask
        return layers[result.name]
