"""The Repair widget's **Auto-detect**: propose damage on the current slice or on all slices,
in a worker thread, and add it to the mask (label 1) without erasing painted strokes.

The detection itself is :func:`napari_flowinpaint.tasks.detection.iter_detect_damage`. On all
slices, a first worker reads the mask to find the slices that already hold paint (the user is
asked about those), then a second one detects. The mask may be a numpy or a zarr array (the
zarr-backed masks of big stacks); each section found is written back whole.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ..tasks.detection import (
    iter_detect_damage,
    iter_normal_region_area,
    known_normal_area,
    remember_normal_area,
    stack_reference,
)
from ._common import reason
from ._layers import PROPOSED, STROKES, painted_question
from ._view import MaskReadError, scan_painted, writable_mask

__all__ = ["DETECT_SCOPES", "AutoDetectMixin", "DetectRun", "iter_proposals"]

#: Where Auto-detect proposes damage (the choices of the ``detect_scope`` box).
DETECT_SCOPES = ("current slice", "all slices")


#: Auto-detect's options: those of :func:`iter_detect_damage` (one source of truth)
_DEFAULTS = inspect.signature(iter_detect_damage).parameters
DETECT_SENSITIVITY = _DEFAULTS["sensitivity"].default
DETECT_MIN_AREA = _DEFAULTS["min_area"].default


@dataclass
class DetectRun:
    """A running **Auto-detect**: the mask it adds to, the sections to check, those where
    damage was found, how many were checked, when it began (``time.perf_counter()``) and
    the section it failed on, if any. While ``scanning``, the mask is being read for the
    slices that already hold paint (``painted``, None until all were read); the detection
    then runs on ``image`` from section ``z`` with margin ``grow``."""

    mask: Labels
    zs: list[int]
    found: list[int] = field(default_factory=list)
    done: int = 0
    t0: float = field(default_factory=time.perf_counter)
    failed: int | None = None
    image: Image | None = None
    z: int = 0
    grow: int = 0
    scanning: bool = False
    painted: list[int] | None = None
    #: sections to judge while learning what is normal for the stack (0: known already)
    learn_total: int = 0
    #: whether the detection of the asked sections has begun
    detecting: bool = False
    #: the mask's ``block_history()`` context while the proposal is being added: the
    #: whole proposal is then one step of the layer's undo (Ctrl-Z)
    history: object = None

    def begin_history(self) -> None:
        """Group the edits to come into one undo step (numpy masks: zarr masks of big
        stacks have no undo in napari)."""
        if isinstance(self.mask.data, np.ndarray) and self.history is None:
            self.history = self.mask.block_history()
            self.history.__enter__()

    def end_history(self) -> None:
        """Commit the grouped edits as one undo step."""
        history, self.history = self.history, None
        if history is not None:
            history.__exit__(None, None, None)


def iter_proposals(stack, zs, *, grow: int = 0, weights=None):
    """What Auto-detect runs: on a stack not judged before, first learn what is normal for
    it (yielding ``(None, (judged, to judge))`` per section, so that it shows and can be
    cancelled; remembered while the array lives, and for the same data in another array),
    then detect on ``zs`` with
    :func:`~napari_flowinpaint.tasks.detection.iter_detect_damage`, yielding ``(z, found)``.
    ``weights``: the detector (None: the bundled one)."""
    options = dict(sensitivity=DETECT_SENSITIVITY, min_area=DETECT_MIN_AREA, weights=weights)
    scale, level = stack_reference(stack, weights)
    options.update(scale=scale, level=level)
    normal = known_normal_area(stack, **options)
    if normal is None:
        reads: dict = {}  # the sections read: the same data opened again is not judged again
        steps = iter_normal_region_area(stack, reads=reads, **options)
        while True:
            try:
                step = next(steps)
            except StopIteration as stop:
                normal = stop.value
                break
            yield None, step
        remember_normal_area(stack, normal, reads=reads, **options)
    yield from iter_detect_damage(stack, zs, grow=grow, normal_area=normal, **options)


class AutoDetectMixin:
    """Proposes a damage mask in the background.

    Expects the widget to hold the mask combo box (``self._mask``), the scope and grow
    boxes (``self._detect_scope``, ``self._grow``), ``self._detect_run`` (None when no
    detection runs), ``self._detector_weights`` (None: the bundled detector) and
    ``self.worker``, and to provide ``_checked_image``,
    ``_refuse_if_running``, ``_begin_run``, ``_missing``, ``_stop_work``, ``new_mask``,
    ``z``, ``_set_running``, ``_on_errored`` and ``_on_finished``; the widget's
    ``_on_finished`` hands a finished run to :meth:`_finish_detection`.
    """

    def auto_detect(self, scope: str | None = None) -> None:
        """Propose damage with :func:`~napari_flowinpaint.tasks.detection.detect_damage` and
        add it to the mask (label 1), on the current slice or on all slices, in the background.

        Detected pixels are only added: strokes already painted are never erased. Before
        adding to other slices that already hold paint, :attr:`ask` asks whether to add
        there too, skip them, or cancel. Without a mask, a new one is made.
        """
        scope = scope or self._detect_scope.value
        if scope not in DETECT_SCOPES:
            raise ValueError(f"scope must be 'current slice' or 'all slices', got {scope!r}.")
        if self._refuse_if_running():
            return
        image = self._checked_image()
        if image is None:
            return
        mask = self._mask.value
        if mask is None or tuple(mask.data.shape) != tuple(image.data.shape):
            mask = self.new_mask()
        if not writable_mask(mask.data):
            self._warn(f"The mask '{mask.name}' is read-only lazy data (only numpy and zarr "
                       "masks can be written); press New mask to get one Auto-detect can fill.")
            return
        zs = [self.z] if scope == "current slice" else list(range(image.data.shape[0]))
        run = DetectRun(mask=mask, zs=zs, image=image, z=self.z, grow=int(self._grow.value))
        if scope == "current slice":  # no other slice is touched: nothing to ask
            self._start_detection(run)
            return
        run.scanning = True
        self._detect_run = run
        self._begin_run(image)
        self._set_running(True)
        self._set_status("Finding the slices that already hold paint...")
        self._open_progress(len(zs), "Finding the painted slices")
        self.worker = create_worker(
            self._scan_painted, mask.data,
            _connect={"yielded": self._on_scanned, "errored": self._on_errored,
                      "finished": self._on_finished},
        )

    def _after_scan(self, run: DetectRun) -> None:
        """Ask about the slices that already hold paint, then detect."""
        zs = run.zs
        painted = [z for z in run.painted if z != run.z]
        if painted:  # the user's strokes, or only what an earlier Auto-detect proposed
            meta = run.mask.metadata
            earlier = set(meta.get(PROPOSED, ())) - set(meta.get(STROKES, ()))
            answer = self.ask(painted_question(
                run.mask.name, [z for z in painted if z not in earlier],
                [z for z in painted if z in earlier]))
            if answer == "cancel":
                self._set_status("Auto-detect cancelled.")
                return
            if answer == "skip":
                skipped = set(painted)
                zs = [z for z in zs if z not in skipped]
        run.zs, run.scanning, run.t0 = zs, False, time.perf_counter()
        self._start_detection(run)

    def _start_detection(self, run: DetectRun) -> None:
        self._detect_run = run
        self._begin_run(run.image)
        why = self._missing()  # the image or the mask may have gone while the user answered
        if why is not None:
            self._detect_run = self._target = self._source = None
            text = f"Auto-detect stopped: {why}; no slice was checked."
            self._set_status(text)
            self._notify(show_warning, text)
            return
        self._set_running(True)
        run.begin_history()
        desc = f"Detecting damage on {len(run.zs)} slice{'s' if len(run.zs) > 1 else ''}"
        self._set_status(f"{desc}...")
        self._open_progress(len(run.zs), desc)
        self.worker = create_worker(
            self._detect_many, run.image.data, run.zs, run.grow,
            _connect={"yielded": self._on_detected, "errored": self._on_errored,
                      "finished": self._on_finished},
        )

    def _end_history(self, run: DetectRun) -> None:
        """Commit the proposal as one undo step: the paint event this sends is no stroke."""
        self._own_edit = True
        try:
            run.end_history()
        finally:
            self._own_edit = False

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

    # ------------------------------------------------------------------ worker plumbing
    # These run in the worker thread. _scan_painted yields (z, None) per mask section read,
    # then (None, painted slices); _detect_many yields (z, found) per section. Both yield
    # (z, reason) when a section fails: they catch every exception, since the worker
    # machinery (superqt) never reports a RuntimeError, which torch raises for many
    # failures, and the widget would wait forever.
    def _scan_painted(self, masks):
        try:
            for z, painted in scan_painted(masks):  # Cancel stops between reports
                yield (z, None) if painted is None else (None, painted)
        except MaskReadError as exc:
            yield exc.z, reason(exc.__cause__)
        except Exception as exc:  # noqa: BLE001 - reported to the user, see above
            yield 0, reason(exc)

    def _on_scanned(self, item) -> None:
        z, info = item
        run = self._detect_run
        if isinstance(info, str):
            run.failed = z
            text = f"Auto-detect could not read slice {z} of the mask '{run.mask.name}': {info}"
            self._set_status(text)
            self._notify(show_error, text)
        elif z is None:
            run.painted = info
        else:
            self._set_status(f"Finding the slices that already hold paint ({z + 1} of "
                             f"{len(run.zs)} checked)...")
            self._progress_to(z + 1)  # last: it runs the Qt event loop

    def _detect_many(self, stack, zs, grow):
        """:func:`iter_proposals` with the widget's detector, every error yielded as
        ``(z, reason)``."""
        last = zs[0] if zs else None
        try:
            for z, found in iter_proposals(stack, zs, grow=grow,
                                           weights=self._detector_weights):
                last = last if z is None else z
                yield z, found
        except Exception as exc:  # noqa: BLE001 - reported to the user, see above
            yield last, reason(exc)

    def _on_detected(self, item) -> None:
        z, found = item
        run = self._detect_run
        if z is None and not isinstance(found, str):  # learning what is normal (first run)
            judged, total = found
            desc = "Learning what is normal for this stack"
            self._set_status(f"{desc} (first Auto-detect on it only): {judged} of {total} "
                             "slices judged...")
            if judged == 1 or total != run.learn_total:
                run.learn_total = total
                self._reset_progress(total, desc)  # runs the Qt event loop: after the rest
            self._progress_to(judged)  # last: it runs the Qt event loop
            return
        # back to the slices asked for after learning: the bar starts again, at the end
        # (resetting it runs the Qt event loop, which may finish the job under our feet)
        restart = bool(run.learn_total) and not run.detecting
        run.detecting = True
        if isinstance(found, str):
            run.failed = z
            self._set_status(f"Auto-detect failed on slice {z}: {found}")
            self._notify(show_error, f"Auto-detect failed on slice {z}: {found}")
            return
        why = self._missing()
        if why is not None:  # the mask or the image went away: drop it and stop
            self._stop_work(why)
            return
        run.done += 1
        if found.any():
            labels = run.mask
            section = np.array(labels.data[z])  # a copy: zarr gives one anyway
            add = found & (section == 0)  # add; painted labels stay as they are
            if add.any() and run.history is not None:  # through the layer: Ctrl-Z undoes it
                ys, xs = np.nonzero(add)
                labels.data_setitem((np.full(ys.size, z), ys, xs), 1)
            elif add.any():  # a zarr mask, written back whole
                section[add] = 1
                labels.data[z] = section
                labels.refresh()
            run.found.append(z)
            if add.any():  # its own proposal there: a later run does not call it a stroke
                labels.metadata[PROPOSED] = sorted({*labels.metadata.get(PROPOSED, ()), z})
        self._set_status(f"checked slice {z} ({run.done} of {len(run.zs)}); damage "
                         f"found on {len(run.found)}")
        if restart:
            self._reset_progress(len(run.zs), f"Detecting damage on {len(run.zs)} slice"
                                              f"{'s' if len(run.zs) > 1 else ''}")
            self._progress_to(run.done)  # last: it runs the Qt event loop
        else:
            self._step_progress()  # last: it runs the Qt event loop

    def _finish_detection(self, run: DetectRun, why: str | None = None) -> None:
        """Report a finished (or stopped) detection in the status and a notification; a
        failed one was reported when it failed. ``why`` says why it was stopped, when
        something it needed went away."""
        self._end_history(run)
        if run.scanning:  # stopped or failed while reading the mask, else go on
            if why is not None:
                text = f"Auto-detect stopped: {why}; no slice was checked."
                self._set_status(text)
                self._notify(show_warning, text)
            elif run.failed is None and run.painted is None:
                self._set_status("Auto-detect cancelled.")
            elif run.failed is None:
                self._after_scan(run)
            return
        found, zs = run.found, run.zs
        listed = ", ".join(map(str, found[:20])) + (" ..." if len(found) > 20 else "")
        if why is not None:
            text = (f"Auto-detect stopped: {why}; damage found on {len(found)} of "
                    f"{run.done} slice{'s' if run.done != 1 else ''} checked"
                    + (f" ({listed})" if found else "") + ".")
            self._set_status(text)
            self._notify(show_warning, text)
            return
        if run.failed is not None:
            return
        stopped = run.done < len(zs)
        text = (f"{'stopped: ' if stopped else ''}damage found on {len(found)} of "
                f"{run.done} slice{'s' if run.done != 1 else ''} checked"
                + (f" ({listed})" if found else "")
                + f" in {time.perf_counter() - run.t0:.1f} s; correct the mask with "
                  "the brush and eraser (Ctrl-Z takes the whole proposal back), then "
                  "press Repair slice or Repair all masked slices.")
        self._set_status(text)
        self._notify(show_info, text)
