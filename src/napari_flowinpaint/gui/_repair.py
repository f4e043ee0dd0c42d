"""The Repair widget's repair: the engine, **Repair slice** and **Repair all masked slices**,
run in a worker thread, and the ``"<image> repaired"`` layer their results go into.

The repair itself is :func:`napari_flowinpaint.tasks.repair.repair_slice` and
:func:`~napari_flowinpaint.tasks.repair.iter_repair_stack`. The result layer shows a
:class:`~napari_flowinpaint.gui._view.RepairedView`: the image read lazily, with the repaired
sections put in, so that a big dask or zarr stack is never read whole.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ..engine import FlowInpainter
from ..tasks.repair import find_neighbours, iter_repair_stack, repair_slice
from ._common import reason, spatial_kwargs
from ._view import MaskReadError, RepairedView, is_big_lazy, scan_painted

__all__ = ["BatchRun", "RepairMixin", "describe_repair", "snapshot"]


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


def describe_repair(z: int, z_prev, z_next, method: str, seconds: float) -> str:
    """The status text for section ``z`` repaired from its neighbours ``z_prev``/``z_next``."""
    sources = [str(n) for n in (z_prev, z_next) if n is not None]
    return (f"slice {z} repaired from {' and '.join(sources)} by {method} "
            f"in {seconds:.2f} s")


def snapshot(data):
    """What a run reads of a mask: an in-memory mask is copied so that painting during the
    run cannot change what the run sees; a lazy (dask/zarr) one is read as it is, slice by
    slice."""
    return np.array(data, copy=True) if isinstance(data, np.ndarray) else data


class RepairMixin:
    """Repairs the painted sections in the background.

    Expects the widget to hold the viewer (``self._viewer``), the mask combo box
    (``self._mask``), the engine state (``self._inpainter``, ``self._weights``,
    ``self._engine_lock``), ``self._batch`` (None when no repair runs), ``self._target``
    (the image being repaired), ``self._result`` (the layer the run writes to, once made)
    and ``self.worker``, and to provide ``_checked_image``, ``_refuse_if_running``,
    ``_begin_run``, ``_missing``, ``_stop_work``, ``_set_running``, ``_on_errored``,
    ``_on_warned`` and ``_on_finished``; the widget's ``_on_finished`` hands a finished run
    to :meth:`_finish_batch`.
    """

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

    # ------------------------------------------------------------------ input checks
    def _checked_inputs(self):
        if self._refuse_if_running():
            return None
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
        return image, mask

    # ------------------------------------------------------------------ actions
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
        self._start(self._repair_many, image, image.data, masks, total=self._batch.sections,
                    desc="Finding the painted slices")

    # ------------------------------------------------------------------ worker plumbing
    # The generators below run in the worker thread and yield ("scanned", z) per mask
    # section read, ("plan", todo) once the painted sections are known, ("repaired", z,
    # section, text) per section, or ("failed", z, reason) when one fails. They catch every
    # exception: the worker machinery (superqt) never reports a RuntimeError, which torch
    # raises for many failures, and the widget would wait forever.
    def _repair_one(self, stack, z, damage, masks):
        t0 = time.perf_counter()
        try:
            engine = self.inpainter
            z_prev, z_next = find_neighbours(stack, z, masks=masks)
            repaired = repair_slice(stack, z, damage, masks=masks, inpainter=engine)
        except Exception as exc:  # noqa: BLE001 - reported to the user, see above
            yield "failed", z, reason(exc)
            return
        yield "repaired", z, repaired, describe_repair(z, z_prev, z_next, engine.method,
                                                       time.perf_counter() - t0)

    def _repair_many(self, stack, masks):
        try:
            for z, todo in scan_painted(masks):  # Cancel stops between reports
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
        done = 0
        try:
            engine = self.inpainter
            for z, repaired in iter_repair_stack(stack, masks, inpainter=engine, slices=todo):
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
        if kind == "scanned":
            self._set_status(f"Finding the painted slices ({z + 1} of {batch.sections} "
                             "checked)...")
            self._progress_to(z + 1)
            return
        if kind == "plan":
            batch.todo = z
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
        repaired, text = rest
        why = self._missing()
        if why is not None:  # nowhere to put it any more: drop it and stop
            self._stop_work(why)
            return
        self._result = self._result_layer(self._target)
        self._result.data[z] = repaired
        self._result.refresh()
        batch.done.append(z)
        self._set_status(text if batch.single else
                         f"repaired slice {z} ({len(batch.done)} of {len(batch.todo)})")
        self._step_progress()

    def _finish_batch(self, batch: BatchRun, why: str | None = None) -> None:
        """Report a finished (or stopped, or failed) repair in the status and a notification;
        ``why`` says why it was stopped, when something it needed went away."""
        done, todo = batch.done, batch.todo
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
        method = self._inpainter.method if self._inpainter is not None else "no method"
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

    def _find_result(self, image: Image) -> Image | None:
        """The ``"<image> repaired"`` layer of ``image``, if the viewer holds one."""
        name = f"{image.name} repaired"
        for layer in self._viewer.layers:
            if (layer.name == name and isinstance(layer, Image)
                    and tuple(layer.data.shape) == tuple(image.data.shape)):
                return layer
        return None

    def _result_layer(self, image: Image) -> Image:
        """The ``"<image> repaired"`` layer, created on first use as a lazy view of the image
        (:class:`~napari_flowinpaint.gui._view.RepairedView`); the repaired sections of a big
        lazy image are kept on disk from the first one."""
        found = self._find_result(image)
        if found is not None:
            return found
        view = RepairedView(image.data, spill_bytes=0 if is_big_lazy(image.data) else None)
        # made hidden, so that napari reads nothing before it is placed at the viewer's slice
        result = Image(view, name=f"{image.name} repaired", rgb=False, visible=False,
                       contrast_limits=image.contrast_limits, colormap=image.colormap,
                       gamma=image.gamma, metadata={"repaired_from": image.name},
                       **spatial_kwargs(image))
        layers = self._viewer.layers
        active = layers.selection.active
        layers.insert(layers.index(image) + 1 if image in layers else len(layers), result)
        if active is not None and active in layers:
            layers.selection.active = active  # keep painting on the mask
        result = layers[result.name]
        result.visible = True
        return result
