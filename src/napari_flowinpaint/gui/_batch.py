"""The "Batch repair" dock widget (Plugins > FlowInpaint > Batch repair): repair a loaded
stack, whole or a range of its sections, with a damage mask (any Labels layer of the
stack's shape) or with the damage Auto-detect finds, into a layer and optionally a file.

The widget gathers and checks the inputs and shows progress; the work is
:func:`~napari_flowinpaint.gui._batch_run.batch_work` (the tasks layer's detection, repair
and writing), run in a worker thread. **Cancel** stops after the current section and keeps
the finished ones.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, PushButton, SpinBox
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ..engine.names import REPAIR_MODES
from ._batch_run import BatchJob, batch_work, job_report
from ._common import RESULT_TAG, ImageChoiceMixin, StatusMixin, image_problem, spatial_kwargs
from ._layers import MASK_TAG, PROPOSED, is_damage_mask, made_for
from ._layout import Fold, arrange
from ._save import default_output, voxel_size_nm
from ._view import RepairedView, is_big_lazy, temporary_zarr

__all__ = ["AUTO_DETECT", "OUTPUTS", "BatchRepairWidget"]

#: The choice of the damage box that detects the damage first, instead of a mask layer.
AUTO_DETECT = "auto-detect"
#: Where the result goes (the ``output_choice`` box).
OUTPUTS = ("new layer", "file")


class BatchRepairWidget(ImageChoiceMixin, StatusMixin, Container):
    """Dock widget repairing many sections of a 3-D image layer at once.

    Pick the stack, the damage (**auto-detect**, or a Labels layer of the stack's shape:
    nonzero = damaged), the sections (**from z** .. **to z**, the whole stack by default)
    and the output (**new layer**, or **file**: ``.tif``, ``.zarr``, ``.ome.zarr``...),
    then press **Repair**. Auto-detect's mask is added as a layer ``"<image> damage mask"``
    (to check, and to reuse in the *Repair section* widget); the repaired sections go into
    the layer ``"<image> repaired"`` (the one the *Repair section* widget uses too, so its
    **Save result...** and **show repaired** work on them), and with **file** the whole
    repaired stack is then written there, with the image's voxel size. The image and the
    mask layers are never modified; an existing file is never written over.

    **Cancel** stops after the current section: the sections repaired so far are kept in
    the layer (the file, which would be incomplete, is not written).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose layers the widget works on (napari passes it in).
    inpainter : FlowInpainter, optional, keyword-only
        The engine to use; by default one is made on the first repair.
    """

    job_name = "Batch repair"
    title = "Batch repair"

    def __init__(self, napari_viewer, *, inpainter=None):
        self._viewer = napari_viewer
        self._inpainter = inpainter
        self._weights = None
        self._detector_weights = None  # None: the bundled detector
        self._engine_lock = threading.Lock()
        self._job: BatchJob | None = None
        self._halted: str | None = None
        self.worker = None  # the running worker, if any

        self._image = ComboBox(name="image_choice", label="image",
                               choices=self._image_choices, nullable=True,
                               tooltip="3-D grayscale stack (z, y, x) to repair")
        self._mask = ComboBox(name="mask_choice", label="damage", choices=self._damage_choices,
                              tooltip="auto-detect: find the damage first; or a Labels layer "
                                      "of the image's shape (nonzero = damaged)")
        self._first = SpinBox(name="first_z", label="from z", min=0, max=0,
                              tooltip="First section to repair")
        self._last = SpinBox(name="last_z", label="to z", min=0, max=0,
                             tooltip="Last section to repair (included)")
        self._output = ComboBox(name="output_choice", label="output", choices=list(OUTPUTS),
                                value="new layer",
                                tooltip="new layer: '<image> repaired'; file: that layer, "
                                        "then written to a file")
        self._file = FileEdit(name="output_file", label="file", mode="w", visible=False,
                              filter="*.tif *.tiff *.zarr",
                              tooltip=".tif, .zarr or .ome.zarr; never written over")
        self._grow = SpinBox(name="detect_grow", label="grow (px)", min=0, max=100, value=2,
                             tooltip="Margin added around detected damage")
        self._mode = ComboBox(name="repair_mode", label="repair", choices=list(REPAIR_MODES),
                              value="textured",
                              tooltip="textured: looks like tissue; faithful: the "
                                      "least-error repair (smooth)")
        self._start = PushButton(name="start_button", text="Repair")
        self._cancel = PushButton(name="cancel_button", text="Cancel", enabled=False,
                                  tooltip="Stop after the current section; finished ones "
                                          "are kept")
        status = self._make_status("Pick the stack, the damage (a mask layer or auto-detect) "
                                   "and the sections, then press Repair.")
        super().__init__(widgets=[self._image, self._mask, self._first, self._last,
                                  self._output, self._file, self._grow, self._mode,
                                  self._start, self._cancel, *status])
        arrange(self, [self._image, self._mask, (self._first, self._last), self._output,
                       self._file, (self._start, self._cancel),
                       Fold("Options: detection margin, repair mode",
                            [self._grow, self._mode]), *status])
        self._image.changed.connect(self._on_image_changed)
        self._output.changed.connect(self._on_output_changed)
        self._start.changed.connect(self.start)
        self._cancel.changed.connect(self.cancel)
        self._watch_layers()
        self._watch_closing()
        self._on_image_changed(self._image.value)

    # ------------------------------------------------------------------ choices
    def _damage_choices(self, _widget=None):
        return [(AUTO_DETECT, AUTO_DETECT), *self._labels_choices()]

    @property
    def mask_layer(self):
        """The Labels layer marking the damage, or :data:`AUTO_DETECT`."""
        return self._mask.value

    @mask_layer.setter
    def mask_layer(self, value) -> None:
        self._mask.value = value

    @property
    def z_range(self) -> tuple[int, int]:
        """The first and last sections to repair (both included)."""
        return int(self._first.value), int(self._last.value)

    @z_range.setter
    def z_range(self, value) -> None:
        first, last = (int(v) for v in value)
        self._first.value, self._last.value = first, last

    def _on_image_changed(self, image) -> None:
        n = int(image.data.shape[0]) if image is not None and image.ndim == 3 else 1
        for box in (self._first, self._last):
            box.max = n - 1
        self._first.value, self._last.value = 0, n - 1
        self._mask.reset_choices()  # only the Labels layers of the image's shape
        mine = [layer for _, layer in self._labels_choices() if is_damage_mask(layer)
                and image is not None and made_for(layer) in (None, image.name)]
        self._mask.value = mine[-1] if mine else AUTO_DETECT
        if image is not None and self._file.value in (None, Path("."), Path("")):
            self._file.value = default_output(image)

    def _on_output_changed(self, output: str) -> None:
        self._file.visible = output == "file"

    def set_weights(self, weights) -> None:
        """Repair with these weights from now on (None: the bundled ones)."""
        with self._engine_lock:
            self._weights, self._inpainter = weights, None
        self._set_status(f"Batch repairs will use the weights "
                         f"{weights or 'bundled with the plugin'}.")

    def set_detector_weights(self, weights) -> None:
        """Auto-detect with these detector weights from now on (None: the bundled one)."""
        self._detector_weights = weights
        self._set_status(f"Auto-detect will use the detector "
                         f"{weights or 'bundled with the plugin'}.")

    def _engine(self, mode: str):
        """The engine (made on first use, in the worker thread), repairing in ``mode``."""
        from ..engine import FlowInpainter

        with self._engine_lock:
            if self._inpainter is None:
                self._inpainter = FlowInpainter(weights=self._weights, mode=mode)
            elif self._inpainter.mode != mode:  # the bundled weights of that mode
                self._inpainter = self._inpainter.with_mode(mode)
            return self._inpainter

    # ------------------------------------------------------------------ checks
    def _checked_job(self) -> BatchJob | None:
        if self.worker is not None:
            self._warn("A batch repair is already running; wait for it or press Cancel.")
            return None
        image = self._image.value
        problem = ("No image layer: open a 3-D stack (or File > Open Sample > FIB-SEM "
                   "medulla sample) and pick it in the widget."
                   + (f" Not offered: {why}" if (why := self._not_offered()) else "")
                   if image is None else image_problem(image))
        mask = self._mask.value
        first, last = self.z_range
        path = Path(self._file.value).expanduser() if self._output.value == "file" else None
        if problem is None and mask is None:
            problem = "No damage: pick auto-detect or a Labels layer of the image's shape."
        elif problem is None and mask != AUTO_DETECT and (
                tuple(mask.data.shape) != tuple(image.data.shape)):
            problem = (f"The mask '{mask.name}' has shape {tuple(mask.data.shape)} but the "
                       f"image '{image.name}' has {tuple(image.data.shape)}; pick another.")
        if problem is None and first > last:
            problem = f"'from z' ({first}) is after 'to z' ({last}); swap them."
        if problem is None and path is not None:
            problem = self._output_problem(path, image)
        if problem is not None:
            self._warn(problem)
            return None
        stack, detect = image.data, mask == AUTO_DETECT
        if detect:
            mask = self._detected_mask(image)
            masks = mask.data
        else:  # what the run reads: painting on during the run changes nothing
            masks = np.array(mask.data, copy=True) if isinstance(
                mask.data, np.ndarray) else mask.data
        view = self._find_view(image)
        view = view.data if view is not None else RepairedView(
            stack, spill_bytes=0 if is_big_lazy(stack) else None)
        protect = [p for p in (image.source.path,) if p]
        return BatchJob(image=image, stack=stack, masks=masks, zs=list(range(first, last + 1)),
                        view=view, detect=detect, grow=int(self._grow.value), path=path,
                        protect=protect, voxel=voxel_size_nm(image)[0], mask_name=mask.name,
                        mask_layer=mask if detect else None)

    @staticmethod
    def _output_problem(path: Path, image) -> str | None:
        from ..tasks.io import check_output_path

        if str(path) in ("", "."):
            return "Choose the output file (.tif, .zarr or .ome.zarr)."
        if path.exists() or path.is_symlink():
            return (f"{path} already exists; choose a new file name (existing files are "
                    "never written over).")
        try:
            check_output_path(path, protect=[p for p in (image.source.path,) if p])
        except (ValueError, TypeError, OSError) as exc:
            return f"Cannot write {path}: {exc}"
        return None

    # ------------------------------------------------------------------ layers
    def _detected_mask(self, image) -> Labels:
        """A new, empty damage mask for Auto-detect to fill (on disk for a big lazy image)."""
        shape = tuple(image.data.shape)
        data = (temporary_zarr(shape, np.uint8, "mask.zarr") if is_big_lazy(image.data)
                else np.zeros(shape, np.uint8))
        mask = Labels(data, name=f"{image.name} damage mask", opacity=0.6,
                      metadata={MASK_TAG: image.name, PROPOSED: []}, **spatial_kwargs(image))
        return self._viewer.add_layer(mask)

    def _find_view(self, image) -> Image | None:
        """The ``"<image> repaired"`` layer of ``image`` when it shows a repaired view."""
        for layer in self._viewer.layers:
            if (layer.name == f"{image.name} repaired" and isinstance(layer, Image)
                    and isinstance(layer.data, RepairedView)
                    and tuple(layer.data.shape) == tuple(image.data.shape)):
                return layer
        return None

    def _result_layer(self, job: BatchJob) -> Image:
        layer = self._find_view(job.image)
        if layer is not None and layer.data is job.view:
            return layer
        image, layers = job.image, self._viewer.layers
        layer = Image(job.view, name=f"{image.name} repaired", rgb=False,
                      metadata={RESULT_TAG: image.name}, contrast_limits=image.contrast_limits,
                      colormap=image.colormap, gamma=image.gamma, **spatial_kwargs(image))
        active = layers.selection.active
        layers.insert(layers.index(image) + 1, layer)  # over the image, under its masks
        if active is not None and active in layers:
            layers.selection.active = active
        return layer

    # ------------------------------------------------------------------ actions
    def start(self) -> None:
        """Detect (with **auto-detect**), repair and write, in the background."""
        job = self._checked_job()
        if job is None:
            return
        self._job, self._halted = job, None
        self._set_running(True)
        n = len(job.zs)
        desc = (f"Detecting damage on {n} slice{'s' * (n != 1)}" if job.detect
                else f"Finding the painted slices among {n}")
        self._set_status(f"{desc}...")
        self._open_progress(n, desc)
        self.worker = create_worker(
            batch_work, job, partial(self._engine, str(self._mode.value)),
            self._detector_weights,
            lambda: self.worker is None or self.worker.abort_requested,
            _connect={"yielded": self._on_yielded, "errored": self._on_errored,
                      "warned": self._on_warned, "finished": self._on_finished})

    def cancel(self) -> None:
        """Stop after the current section; the finished ones are kept."""
        if self.worker is None or self.worker.abort_requested:
            return
        self._stop_work("cancelled")

    def _stop_work(self, why: str) -> None:
        if self._halted is None:
            self._halted = why
        if self.worker is not None:
            self.worker.quit()
        try:
            self._cancel.enabled = False
        except RuntimeError:  # the widget was closed
            pass
        self._set_status("Stopping after the current slice...")

    def _set_running(self, running: bool) -> None:
        try:
            self._start.enabled = not running
            self._cancel.enabled = running
        except RuntimeError:  # the widget was closed while a worker ran
            pass

    def _missing(self, job: BatchJob) -> str | None:
        layers = self._viewer.layers
        if job.image not in layers:
            return f"the image '{job.image.name}' was removed from the viewer"
        if job.image.data is not job.stack:
            return f"the data of the image '{job.image.name}' were replaced"
        if job.layer is not None and job.layer not in layers:
            return f"the layer '{job.layer.name}' was removed from the viewer"
        return None

    def _on_yielded(self, item) -> None:
        kind, value, *rest = item
        job = self._job
        why = self._missing(job) if kind in ("detected", "repaired") else None
        if why is not None:
            self._stop_work(why)
            return
        if kind == "learn":
            judged, total = value
            self._set_status(f"Learning what is normal for this stack (first Auto-detect on "
                             f"it only): {judged} of {total} slices judged...")
            if judged == 1 or total != job.learn_total:
                job.learn_total = total
                self._reset_progress(total, "Learning what is normal for this stack")
            self._progress_to(judged)
        elif kind == "detected":
            job.checked += 1
            if rest[0]:
                job.found.append(value)
                job.mask_layer.metadata[PROPOSED] = list(job.found)
                job.mask_layer.refresh()
            self._set_status(f"Detecting: slice {value} checked ({job.checked} of "
                             f"{len(job.zs)}); damage found on {len(job.found)}...")
            if job.learn_total and job.checked == 1:
                self._reset_progress(len(job.zs), "Detecting damage")
            self._progress_to(job.checked)
        elif kind == "scanned":
            self._progress_to(value - job.zs[0] + 1)
        elif kind == "plan":
            job.todo = value
            if value:
                desc = f"Repairing {len(value)} slice{'s' * (len(value) != 1)}"
                self._set_status(f"{desc}...")
                self._reset_progress(len(value), desc)
        elif kind == "repaired":
            job.done.append(value)
            job.layer = self._result_layer(job)
            job.layer.refresh()
            if job.mask_layer is not None and not job.mask_layer.contour:
                job.mask_layer.contour = 2  # outlines: the repair shows through
            self._set_status(f"repaired slice {value} ({len(job.done)} of {len(job.todo)})")
            self._progress_to(len(job.done))
        elif kind == "failed":
            job.failed = (value, rest[0])
        elif kind == "writing":
            self._set_status(f"Writing {job.path}...")
            self._reset_progress(1, f"Writing {job.path.name}")

    def _on_errored(self, exc: Exception) -> None:
        self._job = None  # a bug in the plumbing: said as it is, not as the job's end
        super()._on_errored(exc)

    def _on_finished(self) -> None:
        job, self._job = self._job, None
        why, self._halted = self._halted, None
        self.worker = None
        self._close_progress()
        self._set_running(False)
        if job is None:
            return
        severity, text = job_report(job, why)
        self._set_status(text, warning=severity == "warning")
        show = {"info": show_info, "warning": show_warning, "error": show_error}[severity]
        self._notify(show, text)
