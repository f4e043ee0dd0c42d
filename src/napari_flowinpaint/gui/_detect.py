"""The Repair widget's **Auto-detect**: propose damage on the current slice or on all slices,
in a worker thread, and add it to the mask (label 1) without erasing painted strokes.

The detection itself is :func:`napari_flowinpaint.tasks.detection.iter_detect_damage`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from napari.layers import Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ..tasks.detection import iter_detect_damage
from ..tasks.repair import damaged_z
from ._common import reason

__all__ = ["DETECT_SCOPES", "AutoDetectMixin", "DetectRun"]

#: Where Auto-detect proposes damage (the choices of the ``detect_scope`` box).
DETECT_SCOPES = ("current slice", "all slices")


@dataclass
class DetectRun:
    """A running **Auto-detect**: the mask it adds to, the sections to check, those where
    damage was found, how many were checked, when it began (``time.perf_counter()``) and
    the section it failed on, if any."""

    mask: Labels
    zs: list[int]
    found: list[int] = field(default_factory=list)
    done: int = 0
    t0: float = field(default_factory=time.perf_counter)
    failed: int | None = None


class AutoDetectMixin:
    """Proposes a damage mask in the background.

    Expects the widget to hold the mask combo box (``self._mask``), the scope and grow
    boxes (``self._detect_scope``, ``self._grow``), ``self._detect_run`` (None when no
    detection runs) and ``self.worker``, and to provide ``_checked_image``,
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
        self._detect_run = DetectRun(mask=mask, zs=zs)
        self._begin_run(image)
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

    # ------------------------------------------------------------------ worker plumbing
    # Runs in the worker thread and yields (z, found) per section, or (z, reason) when a
    # section fails. It catches every exception: the worker machinery (superqt) never
    # reports a RuntimeError, which torch raises for many failures, and the widget would
    # wait forever.
    def _detect_many(self, stack, zs, grow):
        z = zs[0] if zs else None
        try:
            for z, found in iter_detect_damage(stack, zs, grow=grow):
                yield z, found
        except Exception as exc:  # noqa: BLE001 - reported to the user, see above
            yield z, reason(exc)

    def _on_detected(self, item) -> None:
        z, found = item
        run = self._detect_run
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
            section = labels.data[z]
            section[found & (section == 0)] = 1  # add; painted labels stay as they are
            labels.refresh()
            run.found.append(z)
        self._set_status(f"checked slice {z} ({run.done} of {len(run.zs)}); damage "
                         f"found on {len(run.found)}")

    def _finish_detection(self, run: DetectRun, why: str | None = None) -> None:
        """Report a finished (or stopped) detection in the status and a notification; a
        failed one was reported when it failed. ``why`` says why it was stopped, when
        something it needed went away."""
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
                  "the brush and eraser, then repair.")
        self._set_status(text)
        self._notify(show_info, text)
