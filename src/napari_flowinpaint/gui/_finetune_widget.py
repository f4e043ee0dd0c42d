"""The "Fine-tune weights" dock widget: train the learned stages, or adapt the damage
detector, further on the user's stack.

The widget only gathers inputs, checks them and shows progress and results; the work is
:func:`napari_flowinpaint.tasks.training.finetune` (repair networks) or
:func:`~napari_flowinpaint.tasks.training.finetune_detector` (damage detector), run in a
worker thread so the viewer stays responsive. Its ``callback`` reaches the widget through a
Qt signal (queued to the main thread) and **Cancel** makes its ``should_stop`` return True.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton, SpinBox
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Signal

from ..engine import SUPPORTED_DTYPES
from ..tasks.training import DetectorFinetuneResult, FinetuneResult, finetune, finetune_detector
from ._common import INPUT_ERRORS, ImageChoiceMixin, StatusMixin, is_result_layer, reason
from ._finetune_check import check_note
from ._finetune_text import PHASES, progress_text, result_text, result_verdict, verdict
from ._layout import Fold, arrange
from ._loss_plot import LossPlot
from ._weights_output import DEFAULT_DETECTOR_OUTPUT, DEFAULT_OUTPUT, output_problem
from ._widget import RepairWidget

__all__ = ["FinetuneWidget", "TARGETS", "spacing_from_scale", "verdict"]

#: What the dialog can fine-tune (the ``target_choice`` box): name -> (default output,
#: default iterations, what one scored item is called).
TARGETS = {"repair networks": (DEFAULT_OUTPUT, 300, "test repair"),
           "damage detector": (DEFAULT_DETECTOR_OUTPUT, 200, "scored slice")}


class _Relay(QObject):
    """Carries ``finetune``'s ``callback(info)`` from the worker thread to the main thread."""

    info = Signal(object)


def _trainable(layer) -> bool:
    return (isinstance(layer, Image) and layer.ndim == 3 and not layer.rgb
            and not layer.multiscale and np.dtype(layer.data.dtype).type in SUPPORTED_DTYPES
            and not is_result_layer(layer))


def _why_not_trainable(layer) -> str:
    if layer.rgb:
        return "RGB"
    if layer.multiscale:
        return "multiscale"
    if layer.ndim != 3:
        return f"{layer.ndim}-D, shape {tuple(layer.data.shape)}"
    return f"{np.dtype(layer.data.dtype)} data (uint8, uint16 or float32 needed)"


def spacing_from_scale(scale) -> int | None:
    """Neighbour spacing for a stack of this voxel size (z, y, x): the slices about 40 nm
    apart that serial sections are (1 for serial sections, 4 for 10 nm isotropic FIB-SEM),
    1-5; None when the layer has no voxel size (its scale is all ones)."""
    z, y, x = (float(v) for v in tuple(scale)[-3:])
    if (z, y, x) == (1.0, 1.0, 1.0) or min(z, y, x) <= 0:
        return None
    return int(np.clip(round(4.0 * ((y + x) / 2) / z), 1, 5))


class FinetuneWidget(ImageChoiceMixin, StatusMixin, Container):
    """Dock widget fine-tuning the learned stages, or the damage detector, on a 3-D image
    layer (self-supervised).

    Pick what to fine-tune (``repair networks`` or ``damage detector``), the stack,
    optionally a Labels layer of known damage (repair networks: sections with paint on them
    are not trained on; detector: the painted pixels are left out), the number of
    iterations, the neighbour spacing and the output weights file, then press **Start**.
    :func:`~napari_flowinpaint.tasks.training.finetune` damages clean sections synthetically
    and trains on repairing them;
    :func:`~napari_flowinpaint.tasks.training.finetune_detector` trains the detector on this
    stack's sections as they are (what is normal here) and with simulated damage. The last
    sections of the stack are held out and scored before and after (test repairs' PSNR; the
    detector's false alarms on real slices and F1 on simulated damage). **Cancel** stops
    after the current iteration (with a checkpoint beside the output; **Start** with the
    same output resumes) or, while scoring, after the current repair; closing the widget or
    the viewer does the same. When done, :attr:`result` holds the
    :class:`~napari_flowinpaint.tasks.training.FinetuneResult` (or
    ``DetectorFinetuneResult``), a repair run's before/after check (one scored test repair
    with both weights) is shown as the ``fine-tune check: ...`` layers right of the stack
    (:mod:`._finetune_check`), and **Use in Repair widget** (:meth:`use_weights`, offered
    only for weights scored better) makes the docked *Repair section* widget repair (or
    auto-detect) with the new weights. The layers are never modified, and no existing file
    is written over: an output that exists is refused before any work.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose layers the widget works on (napari passes it in).
    score_samples : int, keyword-only
        Samples per damage ratio of the held-out scoring before and after (``finetune``'s
        ``score_samples``); fewer is faster and noisier.
    """

    job_name = "Fine-tuning"
    title = "Fine-tune weights"

    def __init__(self, napari_viewer, *, score_samples: int = 8):
        self._viewer = napari_viewer
        self._score_samples = int(score_samples)
        self._stop = threading.Event()
        self._relay = _Relay()
        self._relay.info.connect(self._on_progress)
        self._returned = False
        self._running_target, self._running_image = "repair networks", None
        self._auto_spacing = 1  # the spacing last taken from an image's voxel size
        self._auto_outputs: list[Path] = []  # outputs proposed beside an image's file
        #: The last run's :class:`~napari_flowinpaint.tasks.training.FinetuneResult`, or None.
        self.result: FinetuneResult | DetectorFinetuneResult | None = None
        self.worker = None  # the running worker, if any (napari.qt.threading.FunctionWorker)

        self._target = ComboBox(name="target_choice", label="fine-tune", choices=list(TARGETS),
                                value="repair networks",
                                tooltip="The repair networks (better repairs of this stack) "
                                        "or the damage detector (fewer false alarms on it)")
        self._image = ComboBox(name="image_choice", label="image",
                               choices=self._image_choices, nullable=True,
                               tooltip="3-D grayscale stack (z, y, x) to fine-tune on")
        self._damage = ComboBox(name="damage_choice", label="known damage",
                                choices=self._labels_choices, nullable=True, value=None,
                                tooltip="Optional Labels layer of the image's shape: the "
                                        "painted damage is not trained on")
        self._iterations = SpinBox(name="iterations", label="iterations", min=1, max=100_000,
                                   value=300, tooltip="Training iterations")
        self._spacing = SpinBox(name="spacing", label="spacing", min=1, max=20, value=1,
                                tooltip="Neighbour distance in slices: 1 for serial "
                                        "sections, 3-5 for isotropic FIB-SEM stacks")
        self._output = FileEdit(name="output_file", label="output weights", mode="w",
                                filter="*.safetensors", value=DEFAULT_OUTPUT,
                                tooltip="Fine-tuned weights file; checkpoints go to "
                                        "<name>.run beside it, and the same file resumes")
        self._where = Label(name="output_path", label="saved as", value="")
        self._where.native.setWordWrap(True)
        self._start_button = PushButton(name="start_button", text="Start")
        self._cancel = PushButton(name="cancel_button", text="Cancel", enabled=False,
                                  tooltip="Stop after the current iteration; the checkpoint "
                                          "is kept and Start resumes")
        self._use = PushButton(name="use_button", text="Use in Repair widget", enabled=False,
                               tooltip="Make the docked Repair section widget use the "
                                       "fine-tuned weights")
        status = self._make_status("Pick a stack and an output file, then press Start.")
        self.plot = LossPlot()
        super().__init__(widgets=[self._target, self._image, self._damage, self._iterations,
                                  self._spacing, self._output, self._where, self._start_button,
                                  self._cancel, self._use, *status])
        self.native.layout().addWidget(self.plot.canvas)
        arrange(self, [self._target, self._image, self._output, self._where, self._iterations,
                       (self._start_button, self._cancel), self._use,
                       Fold("Options: known damage, spacing", [self._damage, self._spacing]),
                       *status, self.plot.canvas])
        self._output.changed.connect(self._show_output)
        self._target.changed.connect(self._on_target)
        self._image.changed.connect(self._follow_image)
        self._show_output()

        self._start_button.changed.connect(self.start)
        self._cancel.changed.connect(self.cancel)
        self._use.changed.connect(self.use_weights)
        self._watch_layers()
        self._watch_closing()

    # ------------------------------------------------------------------ public state
    @property
    def damage_layer(self) -> Labels | None:
        """The Labels layer of known damage (its painted sections are skipped), or None."""
        return self._damage.value

    @damage_layer.setter
    def damage_layer(self, layer: Labels | None) -> None:
        self._damage.value = layer

    @property
    def target(self) -> str:
        """What is fine-tuned: a key of :data:`TARGETS`."""
        return self._target.value

    @target.setter
    def target(self, value: str) -> None:
        if value not in TARGETS:
            raise ValueError(f"target must be one of {list(TARGETS)}, got {value!r}.")
        self._target.value = value

    def _follow_image(self, image) -> None:
        """The spacing from the image's voxel size (when it has one), and the default output
        beside the image's file (when it came from one); a spacing or file the user set
        stays."""
        if image is None:
            return
        spacing = spacing_from_scale(image.scale)
        if spacing is not None and int(self._spacing.value) in (1, self._auto_spacing):
            self._auto_spacing = spacing
            self._spacing.value = spacing
        source = getattr(getattr(image, "source", None), "path", None)
        if source:
            defaults = {output for output, _, _ in TARGETS.values()} | set(self._auto_outputs)
            if Path(self._output.value).expanduser() in defaults:
                suffix = ("-finetuned" if self.target == "repair networks"
                          else "-detector-adapted")
                out = Path(source).expanduser()
                out = out.parent / f"{out.name.split('.')[0]}{suffix}.safetensors"
                self._auto_outputs.append(out)
                self._output.value = out

    def _on_target(self, value: str) -> None:
        """A default output and iteration count follow the choice (a picked file stays)."""
        for name, (output, iterations, _item) in TARGETS.items():
            if name != value:
                if Path(self._output.value).expanduser() == output:
                    self._output.value = TARGETS[value][0]
                if int(self._iterations.value) == iterations:
                    self._iterations.value = TARGETS[value][1]

    def _show_output(self, *_args) -> None:
        """Show the whole output path (the file box shows only its end)."""
        path = Path(self._output.value).expanduser()
        if path.suffix != ".safetensors" and str(path) not in ("", "."):
            path = path.with_name(path.name + ".safetensors")
        self._where.value = str(path.resolve()) if str(path) not in ("", ".") else "-"

    # ------------------------------------------------------------------ layer choices
    def accepts_image(self, layer) -> bool:
        """Only 3-D grayscale single-scale stacks can be fine-tuned on."""
        return _trainable(layer)

    # ------------------------------------------------------------------ input checks
    def _checked_image(self) -> Image | None:
        image = self._image.value
        if image is not None and _trainable(image):
            return image
        others = [layer for layer in self._viewer.layers if isinstance(layer, Image)]
        why = "; ".join(f"'{layer.name}' is {_why_not_trainable(layer)}" for layer in others)
        self._warn("No 3-D image layer to fine-tune on: open a grayscale stack (z, y, x), or "
                   "File > Open Sample > FIB-SEM medulla sample, and pick it in the widget."
                   + (f" ({why}.)" if why else ""))
        return None

    # ------------------------------------------------------------------ actions
    def start(self) -> None:
        """Fine-tune on the picked stack in the background (see the class description)."""
        if self.running:
            self._warn("Fine-tuning is already running; wait for it or press Cancel.")
            return
        image = self._checked_image()
        if image is None:
            return
        out = Path(self._output.value).expanduser()
        problem = output_problem(out)
        if problem is not None:
            self._warn(problem)
            return
        damage = self._damage.value
        iterations, spacing = int(self._iterations.value), int(self._spacing.value)
        self.result = None
        self._stop.clear()
        self._set_running(True)
        self.plot.clear()
        self._phase, self._returned = None, False
        self._running_target = self.target  # the box may be gone (closed) while it runs
        self._running_image = image  # the before/after check goes beside it
        self._open_progress(1, PHASES["before"])
        self._set_status(f"{PHASES['before']} on the last slices of '{image.name}', then "
                         f"training the {self.target} {iterations} iterations...")
        self.worker = create_worker(
            self._run, self._running_target, image.data, out,
            None if damage is None else damage.data,
            iterations, spacing,
            _connect={"returned": self._on_returned, "errored": self._on_errored,
                      "warned": self._on_warned, "finished": self._on_finished},
        )

    def cancel(self) -> None:
        """Stop after the current iteration or scored repair; a training checkpoint is kept
        and :meth:`start` with the same output resumes. Pressing it again does nothing more."""
        if self.worker is None or self._stop.is_set():
            return
        self._stop.set()
        try:
            self._cancel.enabled = False
        except RuntimeError:  # the widget was closed
            pass
        self._set_status("Stopping after the current step (a training checkpoint is "
                         "kept)...")

    def _stop_work(self, why: str) -> None:
        """Stop as :meth:`cancel` does, because ``why`` (the widget or the viewer closed)."""
        self.cancel()
        self._set_status(f"Stopping: {why}...")

    def use_weights(self) -> list[RepairWidget]:
        """Make every *Repair section* (and *Batch repair*) widget docked in this viewer repair
        with the fine-tuned weights (:meth:`RepairWidget.set_weights`), or auto-detect with
        the adapted detector (:meth:`RepairWidget.set_detector_weights`).

        Docked widgets are found through ``viewer.window.dock_widgets`` (napari >= 0.6.2);
        otherwise, or with no Repair widget docked, the status says where the weights are.

        Returns
        -------
        list of RepairWidget
            The widgets switched to the new weights.
        """
        weights = None if self.result is None else self.result.weights
        if weights is None:
            self._warn("No fine-tuned weights yet: press Start and let it finish.")
            return []
        docked = getattr(getattr(self._viewer, "window", None), "dock_widgets", None) or {}
        targets = [w for w in docked.values() if callable(getattr(w, "set_weights", None))]
        if not targets:
            self._warn(f"No Repair section widget is docked in this viewer: open Plugins > "
                       f"FlowInpaint > Repair section and press Use in Repair widget again. "
                       f"The weights are in {weights} (repair --weights on the command line).")
            return []
        detector = isinstance(self.result, DetectorFinetuneResult)
        for widget in targets:
            (widget.set_detector_weights if detector else widget.set_weights)(weights)
        text = (f"The Repair section widget now {'auto-detects' if detector else 'repairs'} "
                f"with {weights}.")
        self._set_status(text)
        self._notify(show_info, text)
        return targets

    # ------------------------------------------------------------------ worker plumbing
    # Runs in the worker thread. Every exception is caught and returned as a value: the
    # worker machinery (superqt) never reports a RuntimeError, which torch raises for many
    # failures, and the widget would wait forever.
    def _run(self, target, stack, out, damaged, iterations, spacing):
        work = finetune_detector if target == "damage detector" else finetune
        try:
            result = work(stack, out, damaged=damaged, iterations=iterations,
                          spacing=spacing, score_samples=self._score_samples,
                          callback=self._relay.info.emit, should_stop=self._stop.is_set)
        except Exception as exc:  # noqa: BLE001 - reported to the user, see above
            return None, exc
        return result, None

    def _set_running(self, running: bool) -> None:
        result = self.result
        # weights are offered only when they were scored better than the starting ones
        judged = None if result is None or result.weights is None else result_verdict(result)
        better = judged is not None and judged[0] == "better"
        try:
            self._start_button.enabled = not running
            self._cancel.enabled = running
            self._use.enabled = not running and better
        except RuntimeError:  # the widget was closed while a worker ran
            pass

    def _on_progress(self, info: dict) -> None:
        if self.worker is None or self._returned:  # a report queued before the end
            return
        step, total = int(info["step"]), int(info["total"])
        phase = info.get("phase", "training")
        text = progress_text(info, TARGETS[self._running_target][2])
        loss = info.get("losses", {}).get("g_total", info.get("loss"))
        if phase == "training" and loss is not None:
            self.plot.add(step, loss)
        if self._stop.is_set():
            text += "; stopping..."
        self._set_status(text)
        # the bars last: updating them runs the Qt event loop, which may deliver the end
        if phase != self._phase:
            self._phase = phase
            self._reset_progress(total, PHASES[phase])
        self._progress_to(step)

    def _on_returned(self, item) -> None:
        result, exc = item
        self._returned = True
        self.plot.redraw()  # the last points, drawn at once
        if exc is not None:
            text = f"Fine-tuning failed: {reason(exc)}"
            self._set_status(text)
            self._notify(show_warning if isinstance(exc, INPUT_ERRORS) else show_error, text)
            return
        self.result = result
        text = result_text(result) + check_note(self._viewer, self._running_image, result)
        self._set_status(text)
        self._set_running(False)
        self._notify(show_info, text)

    def _on_finished(self) -> None:
        self.worker = None
        self._close_progress()
        self._set_running(False)
