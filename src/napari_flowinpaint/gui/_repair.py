"""The Repair widget's repair: the engine, **Repair slice** and **Repair all masked slices**,
run in a worker thread, and the ``"<image> repaired"`` layer their results go into.

The repair itself is :func:`napari_flowinpaint.tasks.repair.repair_slice` and
:func:`~napari_flowinpaint.tasks.repair.iter_repair_stack`. The result layer shows a
:class:`~napari_flowinpaint.gui._view.RepairedView`: the image read lazily, with the repaired
sections put in, so that a big dask or zarr stack is never read whole.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from napari.layers import Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ..engine import FlowInpainter
from ..engine.names import STAGE_LABELS
from ..tasks.repair import find_neighbours, repair_slice
from ._common import reason
from ._results import ResultLayersMixin
from ._view import MaskCensus, MaskReadError, scan_painted

__all__ = ["BatchRun", "RepairMixin", "describe_repair", "mask_doubt", "snapshot"]

#: Before a batch repair replacing more than this share of the stack's voxels, ask first.
ASK_SHARE = 0.20
#: A mask with at least this many distinct labels looks like a segmentation: ask first.
ASK_LABELS = 8


@dataclass
class BatchRun:
    """A running repair: the sections to repair (None while the mask is being scanned for
    them), those repaired so far, when it began (``time.perf_counter()``), the section it
    failed on, if any, whether it is a **Repair slice** (one section) rather than a
    **Repair all masked slices**, the mask's name and its number of sections."""

    todo: list[int] | None
    done: list[int] = field(default_factory=list)
    t0: float = field(default_factory=time.perf_counter)
    failed: int | None = None
    single: bool = False
    mask: str = ""
    sections: int = 0
    census: MaskCensus = field(default_factory=MaskCensus)
    #: set once the user may have been asked whether to go on; ``proceed`` is the answer
    decided: threading.Event = field(default_factory=threading.Event)
    proceed: bool = True


def describe_repair(z: int, z_prev, z_next, method: str, seconds: float,
                    confidence: float | None = None) -> str:
    """The status text for slice ``z`` repaired from its neighbours ``z_prev``/``z_next``
    by the engine's deepest stage ``method``, with the mean confidence in the repaired area."""
    sources = [str(n) for n in (z_prev, z_next) if n is not None]
    text = (f"slice {z} repaired from {' and '.join(sources)} by "
            f"{STAGE_LABELS.get(method, method)} in {seconds:.2f} s")
    if confidence is not None:
        text += f"; mean confidence {confidence:.2f} (show confidence to see where it is low)"
    return text


def mask_doubt(name: str, census: MaskCensus, slices: int, sections: int) -> str | None:
    """The question to ask before repairing with the mask ``name``, or None when it looks
    like a damage mask: one that marks much of the stack, or has many distinct labels (a
    segmentation), is asked about."""
    many = len(census.labels) >= ASK_LABELS
    if census.share <= ASK_SHARE and not many:
        return None
    labels = (f"{len(census.labels)}{'+' if len(census.labels) >= census.MAX_LABELS else ''} "
              "different labels, so it looks like a segmentation rather than damage"
              if many else f"{len(census.labels)} label{'s' if len(census.labels) > 1 else ''}")
    where = f"on {slices} of {sections} slices" if sections > 1 else "on this slice"
    return (f"The mask '{name}' marks {100 * census.share:.0f} % of the "
            f"{'stack' if sections > 1 else 'slice'} ({where}) with {labels}. Every marked "
            "voxel will be replaced by a repair. Repair anyway?")


def snapshot(data):
    """What a run reads of a mask: an in-memory mask is copied so that painting during the
    run cannot change what the run sees; a lazy (dask/zarr) one is read as it is, slice by
    slice."""
    return np.array(data, copy=True) if isinstance(data, np.ndarray) else data


class RepairMixin(ResultLayersMixin):
    """Repairs the painted sections in the background.

    Expects the widget to hold the viewer (``self._viewer``), the mask combo box
    (``self._mask``), the engine state (``self._inpainter``, ``self._weights``,
    ``self._mode_value``,
    ``self._detector_weights``, ``self._engine_lock``), ``self._batch`` (None when no repair
    runs), ``self._target`` (the image being repaired), ``self._result`` (the layer the run
    writes to, once made) and ``self.worker``, and to provide ``_checked_image``,
    ``_refuse_if_running``, ``_begin_run``, ``_missing``, ``_stop_work``, ``_set_running``,
    ``_on_errored``, ``_on_warned`` and ``_on_finished``; the widget's ``_on_finished``
    hands a finished run to :meth:`_finish_batch`. """

    @property
    def inpainter(self) -> FlowInpainter:
        """The engine, created on first use and then reused."""
        with self._engine_lock:
            if self._inpainter is None:
                self._inpainter = FlowInpainter(weights=self._weights, mode=self._mode_value)
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

    def set_detector_weights(self, weights) -> None:
        """Auto-detect with these detector weights from now on (e.g. adapted to this stack by
        the *Fine-tune weights* widget); None for the bundled detector."""
        self._detector_weights = weights
        self._set_status("Auto-detect will use the detector "
                         f"{weights or 'bundled with the plugin'}.")

    def _confirm_dialog(self, question: str) -> bool:
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(self.native, "Repair", question,
                                      QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------------ input checks
    def _checked_inputs(self):
        if self._refuse_if_running():
            return None
        image = self._checked_image()
        if image is None:
            return None
        mask = self._mask.value
        if mask is None:
            shape = tuple(image.data.shape)
            fits = [f"'{layer.name}'" for _, layer in self._labels_choices()]
            others = [f"'{layer.name}' has shape {tuple(layer.data.shape)}"
                      for layer in self._viewer.layers
                      if isinstance(layer, Labels) and tuple(layer.data.shape) != shape]
            self._warn("No damage mask: press New mask and paint the damaged pixels"
                       + (f", or pick {' or '.join(fits)} in 'damage mask'" if fits else "")
                       + "." + (f" (Not offered, not of the image's shape {shape}: "
                                f"{'; '.join(others)}.)" if others else ""))
            return None
        if tuple(mask.data.shape) != tuple(image.data.shape):
            self._warn(f"The mask '{mask.name}' has shape {tuple(mask.data.shape)} but the "
                       f"image '{image.name}' has shape {tuple(image.data.shape)}; pick a mask "
                       "of the image's shape or press New mask.")
            return None
        return image, mask

    # ------------------------------------------------------------------ actions
    def repair_current_slice(self) -> None:
        """Repair section :attr:`z` of the image where the mask is painted, in the background."""
        checked = self._checked_inputs()
        if checked is None:
            return
        image, mask = checked
        z = self.z
        labels = np.array(mask.data[z])  # a snapshot: painting may go on
        damage = labels != 0
        if not damage.any():
            self._warn(f"No damage is painted on slice {z} of '{mask.name}': paint the damaged "
                       "pixels there first, or move to a painted slice.")
            return
        census = MaskCensus()
        census.add(labels)
        if len(census.labels) >= ASK_LABELS:
            question = mask_doubt(mask.name, census, 1, 1)
            if not self.confirm(question):
                self._set_status(f"Slice {z} was not repaired: pick a damage mask (New mask "
                                 "or Auto-detect make one) in 'damage mask'.")
                return
        masks = snapshot(mask.data)
        self._batch = BatchRun(todo=[z], single=True, mask=mask.name)
        self._start(self._repair_one, image, image.data, z, damage, masks, total=1,
                    desc=f"Repairing slice {z}")

    def repair_all(self) -> None:
        """Repair every section whose mask has paint on it, one by one in the background.

        The worker first reads the mask section by section to find the painted ones, then
        repairs them. Progress shows in napari's activity panel; **Cancel** stops after the
        current section and keeps the sections finished so far.
        """
        checked = self._checked_inputs()
        if checked is None:
            return
        image, mask = checked
        masks = snapshot(mask.data)
        self._batch = BatchRun(todo=None, mask=mask.name, sections=int(masks.shape[0]))
        self._start(self._repair_many, image, image.data, masks, self._batch,
                    total=self._batch.sections, desc="Finding the painted slices")

    # ------------------------------------------------------------------ worker plumbing
    # The generators below run in the worker thread and yield ("scanned", z) per mask
    # section read, ("plan", todo) once the painted sections are known (then ("waiting", 0)
    # until the widget decided whether to go on), ("repaired", z, (section, confidence),
    # text) per section, or ("failed", z, reason) when one fails. They catch every
    # exception: the worker machinery (superqt) never reports a RuntimeError, which torch
    # raises for many failures, and the widget would wait forever.
    def _repair_one(self, stack, z, damage, masks):
        t0 = time.perf_counter()
        try:
            engine = self.inpainter
            z_prev, z_next = find_neighbours(stack, z, masks=masks, hole=damage)
            *repaired, report = repair_slice(stack, z, damage, masks=masks, inpainter=engine,
                                             return_confidence=True, return_report=True)
        except Exception as exc:  # noqa: BLE001 - reported to the user, see above
            yield "failed", z, reason(exc)
            return
        yield "repaired", z, repaired, describe_repair(
            z, z_prev, z_next, engine.method, time.perf_counter() - t0, report.confidence)

    def _repair_many(self, stack, masks, batch: BatchRun):
        try:  # Cancel stops between reports
            for z, todo in scan_painted(masks, census=batch.census):
                if todo is None:
                    yield "scanned", z
        except MaskReadError as exc:
            yield "failed", exc.z, reason(exc.__cause__)
            return
        except Exception as exc:  # noqa: BLE001 - reported to the user, see above
            yield "failed", 0, reason(exc)
            return
        yield "plan", todo
        if not todo:
            return
        while not batch.decided.wait(0.05):  # the widget may be asking the user
            yield "waiting", 0
        if not batch.proceed:
            return
        done = 0
        try:
            engine = self.inpainter
            for z in todo:
                repaired = repair_slice(stack, z, np.asarray(masks[z]), masks=masks,
                                        inpainter=engine, return_confidence=True)
                done += 1
                yield "repaired", z, repaired, None
        except Exception as exc:  # noqa: BLE001 - reported to the user, see above
            yield "failed", todo[done], reason(exc)

    def _start(self, func, image, *args, total: int, desc: str) -> None:
        self._begin_run(image)
        self._set_running(True)
        self._set_status(f"{desc}...")
        self._open_progress(total, desc)
        self.worker = create_worker(
            func, *args,
            _connect={"yielded": self._on_yielded, "errored": self._on_errored,
                      "warned": self._on_warned, "finished": self._on_finished},
        )

    def _on_yielded(self, item) -> None:
        kind, z, *rest = item
        batch = self._batch
        # the progress bar goes last: updating it runs the Qt event loop, which may deliver
        # the worker's next signals before this one is handled to the end
        if kind == "waiting":
            return
        if kind == "scanned":
            self._set_status(f"Finding the painted slices ({z + 1} of {batch.sections} "
                             "checked)...")
            self._progress_to(z + 1)
            return
        if kind == "plan":
            batch.todo = z
            question = batch.todo and mask_doubt(batch.mask, batch.census, len(batch.todo),
                                                 batch.sections)
            if question:
                batch.proceed = bool(self.confirm(question))
            batch.decided.set()
            if batch.todo and not batch.proceed:
                return
            if batch.todo:
                desc = f"Repairing {len(batch.todo)} slice{'s' if len(batch.todo) > 1 else ''}"
                self._set_status(f"{desc}...")
                self._reset_progress(len(batch.todo), desc)
            return
        if kind == "failed":
            batch.failed = z
            text = (f"Reading slice {z} of the mask '{batch.mask}' failed: {rest[0]}"
                    if batch.todo is None else f"Repair of slice {z} failed: {rest[0]}")
            self._set_status(text)
            self._notify(show_error, text)
            return
        (repaired, confidence), text = rest
        why = self._missing()
        if why is not None:  # nowhere to put it any more: drop it and stop
            self._stop_work(why)
            return
        self._result = self._result_layer(self._target)
        self._result.data[z] = repaired
        self._result.refresh()
        self._put_confidence(self._target, z, confidence)
        batch.done.append(z)
        self._set_status(text if batch.single else
                         f"repaired slice {z} ({len(batch.done)} of {len(batch.todo)})")
        self._step_progress()

    def _finish_batch(self, batch: BatchRun, why: str | None = None) -> None:
        """Report a finished (or stopped, or failed) repair in the status and a notification;
        ``why`` says why it was stopped, when something it needed went away."""
        done, todo = batch.done, batch.todo
        if todo and not batch.proceed:
            self._set_status(f"Nothing was repaired: the mask '{batch.mask}' was not used. "
                             "Pick a damage mask (New mask or Auto-detect make one) in "
                             "'damage mask'.")
            return
        if not todo:  # stopped while scanning the mask, or nothing painted
            if why is not None:
                text = f"Repair stopped: {why}; no slice was repaired."
                self._set_status(text)
                self._notify(show_warning, text)
            elif todo is not None:
                self._warn(f"No damage is painted anywhere in '{batch.mask}': paint the "
                           "damaged pixels first.")
            elif batch.failed is None:
                self._set_status("Repair cancelled while finding the painted slices; "
                                 "nothing was repaired.")
            return
        seconds = time.perf_counter() - batch.t0
        listed = f" ({', '.join(map(str, done))})" if done else ""
        counted = f"{len(done)} of {len(todo)} slice{'s' if len(todo) > 1 else ''} repaired"
        method = (STAGE_LABELS.get(self._inpainter.method, self._inpainter.method)
                  if self._inpainter is not None else "no method")
        if why is not None:
            text = f"Repair stopped: {why}; {counted}{listed}."
            self._set_status(text)
            self._notify(show_warning, text)
            return
        if batch.failed is not None:  # reported when it failed; a batch says what it kept
            if not batch.single:
                self._set_status(f"stopped at slice {batch.failed} (see the error); "
                                 f"{counted}{listed}")
            return
        if batch.single:  # the status already says how the section was repaired
            return
        if len(done) == len(todo):
            text = (f"{len(done)} slice{'s' if len(done) > 1 else ''} repaired{listed} "
                    f"by {method} in {seconds:.2f} s")
        else:
            text = f"stopped: {counted}{listed} by {method}; the rest are unchanged"
        self._set_status(text)
        self._notify(show_info, text)
