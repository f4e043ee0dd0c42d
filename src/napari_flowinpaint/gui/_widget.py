"""The "Repair section" dock widget: paint the damage, repair one section or all of them.

The widget only gathers inputs, checks them and shows results; it is assembled from one
mixin per job: :class:`~napari_flowinpaint.gui._layers.LayerPickingMixin` (the image and mask
choices, the slice that follows the viewer, New mask),
:class:`~napari_flowinpaint.gui._repair.RepairMixin` (repair, run in a worker thread so the
viewer stays responsive) and :class:`~napari_flowinpaint.gui._detect.AutoDetectMixin`
(Auto-detect) and :class:`~napari_flowinpaint.gui._save.SaveMixin` (Save result...), over
:class:`~napari_flowinpaint.gui._common.StatusMixin`. Big lazy (dask, zarr) stacks are read a
section at a time: see :mod:`napari_flowinpaint.gui._view`.
"""

from __future__ import annotations

import threading

from magicgui.widgets import CheckBox, ComboBox, Container, PushButton, SpinBox

from ..engine import FlowInpainter
from ..engine.names import REPAIR_MODES
from ._common import StatusMixin
from ._detect import DETECT_SCOPES, AutoDetectMixin, DetectRun
from ._layers import LayerPickingMixin
from ._layout import Fold, arrange
from ._repair import BatchRun, RepairMixin
from ._save import SaveMixin

__all__ = ["RepairWidget"]


class RepairWidget(LayerPickingMixin, RepairMixin, AutoDetectMixin, SaveMixin, StatusMixin,
                   Container):
    """Dock widget repairing damaged sections of a 3-D image layer from its neighbours.

    Pick the image (a 3-D grayscale stack) and a damage mask (a Labels layer of the same
    shape, nonzero = damaged; **New mask** makes an empty one ready to paint), then
    **Repair slice** repairs the section shown in the viewer and **Repair all masked
    slices** every section with paint on it. Results go into an image layer named
    ``"<image> repaired"``: a lazy view of the stack with the repaired sections put in,
    updated by later repairs; **Save result...** writes it to TIFF, zarr or OME-Zarr. The
    image and the mask are never modified, and a dask or zarr image is never read whole: the
    mask of a big one lives in a temporary zarr store, and so do its repaired sections.

    A running job stops after the current section, keeping the finished ones, when
    **Cancel** is pressed, when the widget or the viewer is closed, and when the image, the
    result layer or the mask Auto-detect fills is removed (or the image gets new data); it
    never recreates a layer that was removed. The status says why it stopped.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose layers the widget works on (napari passes it in).
    inpainter : FlowInpainter, optional, keyword-only
        The engine to use. By default one is created on the first repair (in the worker
        thread, so a slow start does not freeze the viewer) and reused afterwards.
    """

    job_name = "Repair"
    title = "Repair section"

    def __init__(self, napari_viewer, *, inpainter: FlowInpainter | None = None):
        self._viewer = napari_viewer
        self._inpainter = inpainter
        self._weights = None
        self._detector_weights = None  # None: the bundled detector
        self._engine_lock = threading.Lock()
        self._mode_value = "textured"  # the repair mode, readable from worker threads
        self._syncing = False
        self._batch: BatchRun | None = None
        self._target = None  # the image the running job reads
        self._source = None  # ... and its data array, as the job got it
        self._result = None  # the layer the running repair writes to, once made
        self._halted: str | None = None  # why the running job was stopped, if it was
        self._detect_run: DetectRun | None = None
        self._paint_watched: list = []  # the Labels layers whose strokes are followed
        self._told_paint: set[str] = set()  # ... and those the user was told were not used
        #: Asked before Auto-detect adds to slices the user painted: called with the
        #: question, returns "add", "skip" or "cancel". Replaced in tests.
        self.ask = self._ask_dialog
        #: Asked before a repair that would change much of the stack, or with a mask that
        #: looks like a segmentation: called with the question, returns True to go on.
        #: Replaced in tests.
        self.confirm = self._confirm_dialog
        self._init_saving()
        self.worker = None  # the running worker, if any (napari.qt.threading.GeneratorWorker)

        self._image = ComboBox(name="image_choice", label="image",
                               choices=self._image_choices, nullable=True,
                               tooltip="3-D grayscale stack (z, y, x) to repair")
        self._mask = ComboBox(name="mask_choice", label="damage mask",
                              choices=self._labels_choices, nullable=True,
                              tooltip="Labels layer of the image's shape; nonzero = damaged")
        self._new_mask = PushButton(name="new_mask_button", text="New mask",
                                    tooltip="Add an empty damage mask and start painting")
        self._z = SpinBox(name="slice_index", label="slice (z)", min=0, max=0,
                          tooltip="Section to repair; follows the viewer's slider")
        self._detect_scope = ComboBox(name="detect_scope", label="auto-detect on",
                                      choices=list(DETECT_SCOPES), value="current slice",
                                      tooltip="Where Auto-detect proposes damage")
        self._grow = SpinBox(name="detect_grow", label="grow (px)", min=0, max=100, value=2,
                             tooltip="Margin added around detected damage")
        self._detect = PushButton(name="detect_button", text="Auto-detect",
                                  tooltip="Propose a damage mask; then correct it with the "
                                          "brush and eraser. Painted strokes are kept.")
        self._mode = ComboBox(name="repair_mode", label="repair", choices=list(REPAIR_MODES),
                              value="textured",
                              tooltip="textured: looks like tissue and serves segmentation "
                                      "better; faithful: the least-error repair (smooth), for "
                                      "measuring against a truth")
        self._repair = PushButton(name="repair_button", text="Repair slice")
        self._repair_all = PushButton(name="repair_all_button",
                                      text="Repair all masked slices")
        self._show_result = CheckBox(name="show_result", text="show repaired", value=True,
                                     tooltip="Before/after: show the repaired slices over the "
                                             "original, or hide them")
        self._show_confidence = CheckBox(
            name="show_confidence", text="show confidence", value=False,
            tooltip="Overlay where the repair can be trusted least (red: low confidence)")
        self._save = PushButton(name="save_button", text="Save result...",
                                tooltip="Write the repaired stack to TIFF, zarr or OME-Zarr "
                                        "(.ome.zarr) with the image's voxel size")
        self._cancel = PushButton(name="cancel_button", text="Cancel", enabled=False,
                                  tooltip="Stop after the current section; finished ones are kept")
        status = self._make_status("Pick an image, press New mask and paint the damage.")
        super().__init__(widgets=[self._image, self._mask, self._new_mask, self._z,
                                  self._detect_scope, self._grow, self._detect, self._mode,
                                  self._repair,
                                  self._repair_all, self._show_result, self._show_confidence,
                                  self._save, self._cancel, *status])
        # short enough for a laptop screen beside the Fine-tune widget: a scroll area, paired
        # buttons, and the options one rarely changes behind a click
        arrange(self, [self._image, self._mask, (self._new_mask, self._detect), self._z,
                       self._detect_scope, self._repair, self._repair_all,
                       (self._show_result, self._show_confidence), (self._save, self._cancel),
                       Fold("Options: detection margin, repair mode", [self._grow, self._mode]),
                       *status])

        self._image.changed.connect(self._on_image_changed)
        self._mode.changed.connect(self._on_mode_changed)
        self._z.changed.connect(self._on_z_changed)
        self._new_mask.changed.connect(self.new_mask)
        self._detect.changed.connect(self.auto_detect)
        self._repair.changed.connect(self.repair_current_slice)
        self._repair_all.changed.connect(self.repair_all)
        self._save.changed.connect(self._on_save_clicked)
        self._show_result.changed.connect(self._on_show_result)
        self._show_confidence.changed.connect(self._on_show_confidence)
        self._cancel.changed.connect(self.cancel)
        self._viewer.dims.events.current_step.connect(self._follow_viewer)
        self._watch_layers()
        self._watch_closing()
        self._on_image_changed(self._image.value)

    def _on_mode_changed(self, mode: str) -> None:
        """Later repairs use ``mode``; a repair already running finishes as it began (it
        keeps its engine: the new one is :meth:`FlowInpainter.with_mode`, a copy sharing
        the networks or, with the bundled weights, the engine of that mode's weights)."""
        with self._engine_lock:
            self._mode_value = mode
            if self._inpainter is not None:
                self._inpainter = self._inpainter.with_mode(mode)
        self._set_status(f"Repairs will be {mode}.")

    def cancel(self) -> None:
        """Stop the running job after the current section (finished ones are kept).
        Pressing it again while the job stops does nothing more."""
        if self.worker is None or self.worker.abort_requested:
            return
        self.worker.quit()
        try:
            self._cancel.enabled = False
        except RuntimeError:  # the widget was closed
            pass
        self._set_status("Stopping after the current slice...")

    # ------------------------------------------------------------------ run guards
    # A run reads the image (and a snapshot of the mask) it started with; whatever happens
    # to the layers meanwhile, it never writes anywhere else. When the image, the mask
    # Auto-detect fills or the result layer leaves the viewer, or the image gets new data,
    # the run stops after the current section and drops what it can no longer place.
    def _refuse_if_running(self) -> bool:
        if self.worker is None:
            return False
        job = ("Auto-detect" if self._detect_run is not None else
               "A save" if self._save_run is not None else "A repair")
        self._warn(f"{job} is already running; wait for it or press Cancel.")
        return True

    def _begin_run(self, image) -> None:
        self._target, self._source = image, image.data
        self._result = self._confidence = None
        self._halted = None

    def _missing(self) -> str | None:
        """Why the running job's results have nowhere to go any more, or None."""
        if self._gone:
            return "the viewer was closed"
        layers = self._viewer.layers
        image, run, result = self._target, self._detect_run, self._result
        if image is not None and image not in layers:
            return f"the image '{image.name}' was removed from the viewer"
        if image is not None and image.data is not self._source:
            return f"the data of the image '{image.name}' were replaced"
        if run is not None and run.mask not in layers:
            return f"the mask '{run.mask.name}' was removed from the viewer"
        if result is not None and result not in layers:
            return f"the layer '{result.name}' was removed from the viewer"
        return None

    def _stop_work(self, why: str) -> None:
        """Stop the running job after the current section, because ``why``."""
        if self._halted is None:
            self._halted = why
            self._set_status(f"Stopping: {why}...")
        if self.worker is not None:
            self.worker.quit()

    def _on_layers_changed(self, _event=None) -> None:
        super()._on_layers_changed(_event)
        self._watch_paint()
        why = self._missing() if self.worker is not None else None
        if why is not None:
            self._stop_work(why)

    def _disconnect_viewer(self) -> None:
        super()._disconnect_viewer()
        self._unwatch_paint()
        self._viewer.dims.events.current_step.disconnect(self._follow_viewer)

    # ------------------------------------------------------------------ worker plumbing
    def _set_running(self, running: bool) -> None:
        try:
            for button in (self._new_mask, self._detect, self._repair, self._repair_all,
                           self._save):
                button.enabled = not running
            self._cancel.enabled = running
        except RuntimeError:  # the widget was closed while a worker ran
            pass

    def _on_save_clicked(self) -> None:
        self.save_result()

    def _on_errored(self, exc: Exception) -> None:
        if self._detect_run is not None:
            self._end_history(self._detect_run)
        self._batch = self._save_run = self._detect_run = None
        super()._on_errored(exc)

    def _on_finished(self) -> None:
        batch, self._batch = self._batch, None
        run, self._detect_run = self._detect_run, None
        save, self._save_run = self._save_run, None
        why, self._halted = self._halted, None
        self.worker = self._target = self._source = self._result = None
        self._close_progress()
        self._set_running(False)
        if save is not None:
            self._finish_save(save, why)
        if run is not None:
            self._finish_detection(run, why)
        if batch is not None:
            self._finish_batch(batch, why)
