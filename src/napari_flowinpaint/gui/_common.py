"""What both dock widgets share: the status label, the background-worker state, the worker's
error and warning handlers, and how failures and spatial properties are turned into text and
layer arguments."""

from __future__ import annotations

import logging
import weakref

import numpy as np
from magicgui.widgets import ProgressBar
from napari.layers import Image, Labels
from napari.utils import progress
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import QEvent, QObject

__all__ = ["INPUT_ERRORS", "RESULT_TAG", "SPATIAL", "ImageChoiceMixin", "StatusMixin",
           "image_problem", "is_result_layer", "reason", "spatial_kwargs"]

_log = logging.getLogger(__name__)

#: What the tasks layer raises for inputs it cannot repair (shown as a notification).
INPUT_ERRORS = (ValueError, TypeError, IndexError)

#: Spatial properties a derived layer copies from its source so both overlay exactly.
SPATIAL = ("scale", "translate", "rotate", "shear", "affine", "units")


def spatial_kwargs(layer) -> dict:
    """The :data:`SPATIAL` properties of ``layer``, as keyword arguments for a new layer."""
    return {key: getattr(layer, key) for key in SPATIAL if hasattr(layer, key)}


def reason(exc: Exception) -> str:
    """The message for a failed section: the tasks layer's own words for bad input, the
    exception type too (and the traceback in the log) for anything unexpected."""
    if isinstance(exc, INPUT_ERRORS):
        return str(exc)
    _log.error("repair failed", exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


class _CloseWatch(QObject):
    """Calls ``on_close()`` when the Qt widget it watches is closed, or taken out of its dock
    (napari's dock close button only unparents the widget, it sends no close event)."""

    def __init__(self, parent, on_close):
        super().__init__(parent)
        self._on_close = on_close

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind == QEvent.Type.Close or (kind == QEvent.Type.ParentChange
                                         and obj.parent() is None):
            self._on_close()
        return False


class StatusMixin:
    """What both dock widgets share: a status label (``self._status``), a background worker
    (``self.worker``, None when idle), the handlers for its ``errored`` and ``warned``
    signals, and what happens when the widget or its viewer closes while work runs.

    A widget sets :attr:`job_name`, the job an unexpected worker error is reported for, and
    :attr:`title`; it calls :meth:`_watch_closing` once built and provides ``_stop_work(why)``
    (stop the running work soon, saying why) and ``_disconnect_viewer()``.
    """

    #: Names the job in "<job_name> failed (<exception type>): <message>".
    job_name = "Work"
    #: The widget's name in napari's Plugins menu.
    title = "FlowInpaint"
    #: True once the Qt widget is destroyed (its viewer was closed): nothing is shown any more.
    _gone = False

    def __repr__(self) -> str:
        # napari formats a worker's function (a method of this widget) into its task status,
        # also after the viewer closed; magicgui's own repr reads the (deleted) Qt widgets.
        return f"<{type(self).__name__}>"

    @property
    def status(self) -> str:
        """The last status message shown in the widget."""
        return self._status.value

    @property
    def running(self) -> bool:
        """True while work runs in the background."""
        return self.worker is not None

    def _make_status(self, text: str):
        """The status label (wrapping over the widget's whole width) and the widget's own
        progress bar (hidden while no job runs), to put last in the widget."""
        from magicgui.widgets import Label
        from qtpy.QtWidgets import QSizePolicy

        self._status = Label(name="status_label", label="status", value=text)
        self._status.native.setWordWrap(True)
        self._status.native.setMinimumWidth(260)
        self._status.native.setSizePolicy(QSizePolicy.Policy.Expanding,
                                          QSizePolicy.Policy.Preferred)
        self._bar = ProgressBar(name="progress_bar", label="progress", value=0, max=1,
                                visible=False)
        return [self._status, self._bar]

    def _set_status(self, text: str, *, warning: bool = False) -> None:
        try:
            self._status.value = text
            self._status.tooltip = text  # the whole message, also when scrolled out of view
            self._status.native.setStyleSheet("color: #e8a33d;" if warning else "")
        except RuntimeError:  # the widget was closed while a worker ran: nothing to show
            return
        if not warning:
            self._dismiss_warnings()

    def _dismiss_warnings(self) -> None:
        """Close the warning toasts this widget raised: the problem they named is past."""
        warned, self._warned = getattr(self, "_warned", []), []
        if not warned:
            return
        try:  # napari's toasts have no public handle; leave them if this ever changes
            from napari._qt.dialogs.qt_notification import NapariQtNotification

            for toast in list(NapariQtNotification._instances):
                if toast.message.text() in warned:
                    toast.close()
        except Exception:  # noqa: BLE001 - a cosmetic clean-up must never break the widget
            pass

    def _notify(self, show, text: str) -> None:
        """``show(text)`` (a napari notification), unless the viewer is closed."""
        if not self._gone:
            show(text)

    def _warn(self, text: str) -> None:
        self._set_status(text, warning=True)
        self._warned = [*getattr(self, "_warned", []), text]
        self._notify(show_warning, text)

    # ------------------------------------------------------------------ progress bars
    # The running job's bar in the widget and in napari's activity panel, driven from the
    # main thread. Updating napari's bar runs the Qt event loop (it calls processEvents), so
    # the worker's next signals, its end included, may be handled inside these calls:
    # callers update the bars last, and each step checks that the bar is still the job's.
    _pbar = None

    def _show_bar(self, done: int | None = None, total: int | None = None,
                  desc: str | None = None) -> None:
        bar = getattr(self, "_bar", None)
        try:
            if bar is None:
                return
            if total is not None:
                bar.max = max(1, int(total))
                bar.visible = True
            if done is not None:
                bar.value = min(int(done), bar.max)
            if desc is not None:
                bar.tooltip = desc
        except RuntimeError:  # the widget was closed
            pass

    def _open_progress(self, total: int, desc: str) -> None:
        self._close_progress()
        self._show_bar(0, total, desc)
        self._pbar = progress(total=total, desc=desc)

    def _step_progress(self, n: int = 1) -> None:
        if self._pbar is not None:
            self._show_bar(self._pbar.n + n)
            self._pbar.update(n)

    def _progress_to(self, n: int) -> None:
        if self._pbar is not None:
            self._show_bar(n)
            self._pbar.update(max(0, int(n) - self._pbar.n))

    def _reset_progress(self, total: int, desc: str) -> None:
        """Start the bar again for the next phase of the job (e.g. after a scan)."""
        pbar = self._pbar
        self._show_bar(0, total, desc)
        for step in (lambda: pbar.reset(total=total), lambda: pbar.set_description(desc),
                     lambda: pbar.update(0)):
            if pbar is None or pbar is not self._pbar:
                return
            step()

    def _close_progress(self) -> None:
        pbar, self._pbar = self._pbar, None
        try:
            if getattr(self, "_bar", None) is not None:
                self._bar.visible = False
        except RuntimeError:  # the widget was closed
            pass
        if pbar is not None:
            pbar.close()

    def _on_errored(self, exc: Exception) -> None:
        # An unexpected exception in the plumbing (a bug): say so, and leave the traceback
        # to the log.
        text = f"{self.job_name} failed ({type(exc).__name__}): {exc}"
        self._set_status(text)
        self._notify(show_error, text)

    # ------------------------------------------------------------------ closing
    def _watch_closing(self) -> None:
        """Stop the running work when the widget is closed or undocked, and also forget the
        viewer when the Qt widget is destroyed (the viewer closed)."""
        ref = weakref.ref(self)  # the Qt connections must not keep the widget alive

        def closed(destroyed: bool) -> None:
            widget = ref()
            if widget is not None:
                widget._on_closed(destroyed)

        self._close_watch = _CloseWatch(self.native, lambda: closed(False))
        self.native.installEventFilter(self._close_watch)
        self.native.destroyed.connect(lambda *_: closed(True))

    def _on_closed(self, destroyed: bool) -> None:
        if destroyed:
            self._gone = True
            self._disconnect_viewer()
        if self.worker is not None:
            self._stop_work("the viewer was closed" if destroyed
                            else f"the {self.title} widget was closed")

    def _on_warned(self, showwarning_args: tuple) -> None:
        # Warnings raised in the worker thread (e.g. a section with one usable neighbour)
        # arrive here as warnings.showwarning arguments; napari 0.9 does not relay them.
        self._notify(show_warning, str(showwarning_args[0]))


#: Metadata key of the layers the plugin made as results (repaired, confidence): the name of
#: the image they were made from. They are never offered as inputs.
RESULT_TAG = "repaired_from"


def is_result_layer(layer) -> bool:
    """Whether ``layer`` is one of the plugin's result layers (never an input)."""
    return RESULT_TAG in getattr(layer, "metadata", {})


def image_problem(layer) -> str | None:
    """Why the Image layer ``layer`` cannot be repaired or trained on (a sentence naming it),
    or None when it is a 3-D grayscale single-scale stack of a supported type."""
    from ..engine import SUPPORTED_DTYPES

    if layer.rgb:
        return (f"'{layer.name}' is an RGB image; EM images must be grayscale. Convert it to "
                "one channel first.")
    if layer.multiscale:
        return (f"'{layer.name}' is multiscale; open its full-resolution level as a "
                "single-scale image to repair it.")
    shape = tuple(layer.data.shape)
    if layer.ndim != 3:
        what = "a single 2-D slice" if layer.ndim == 2 else f"{layer.ndim}-D"
        return (f"'{layer.name}' is {what} (shape {shape}); repair needs a 3-D stack "
                "(z, y, x) whose neighbouring slices guide it.")
    if shape[0] < 2:
        return f"'{layer.name}' has a single slice; there is no neighbour to repair from."
    dtype = np.dtype(layer.data.dtype)
    if dtype.type not in SUPPORTED_DTYPES:
        return (f"'{layer.name}' holds {dtype} data, which cannot be repaired; convert it to "
                "uint8, uint16 or float32 first (e.g. in Fiji: Image > Type).")
    return None


class ImageChoiceMixin:
    """An image box (``self._image``) and Labels choices kept in step with the viewer.

    Expects the viewer in ``self._viewer``. A widget narrows the images it offers by
    overriding :meth:`accepts_image`, builds its boxes with ``choices=self._image_choices``
    and ``choices=self._labels_choices``, and calls :meth:`_watch_layers` once they exist.
    Only Labels layers of the picked image's shape are offered.
    """

    def accepts_image(self, layer) -> bool:
        """Whether ``layer`` may be picked as the image: a 3-D grayscale stack
        (:func:`image_problem` finds nothing wrong) that is not one of the plugin's own
        results (repaired, confidence)."""
        return (isinstance(layer, Image) and not is_result_layer(layer)
                and image_problem(layer) is None)

    def _not_offered(self) -> str:
        """Why the viewer's other Image layers are not offered (a sentence each), or ""."""
        return " ".join(problem for layer in self._viewer.layers
                        if isinstance(layer, Image) and not is_result_layer(layer)
                        and (problem := image_problem(layer)) is not None)

    @property
    def image_layer(self) -> Image | None:
        """The image layer the widget works on."""
        return self._image.value

    @image_layer.setter
    def image_layer(self, layer: Image | None) -> None:
        self._image.value = layer

    def _image_choices(self, _widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers if self.accepts_image(layer)]

    def _labels_choices(self, _widget=None):
        box = getattr(self, "_image", None)
        image = None if box is None else box.value
        shape = None if image is None else tuple(image.data.shape)
        return [(layer.name, layer) for layer in self._viewer.layers
                if isinstance(layer, Labels)
                and (shape is None or tuple(layer.data.shape) == shape)]

    def _watch_layers(self) -> None:
        layer_events = self._viewer.layers.events
        for event in (layer_events.inserted, layer_events.removed, layer_events.reordered):
            event.connect(self._on_layers_changed)
        self._on_layers_changed()

    def _disconnect_viewer(self) -> None:
        """Stop following the viewer (its Qt widgets are gone)."""
        layer_events = self._viewer.layers.events
        for event in (layer_events.inserted, layer_events.removed, layer_events.reordered):
            event.disconnect(self._on_layers_changed)

    def _on_layers_changed(self, _event=None) -> None:
        self.reset_choices()
        if self._image.value is None:  # take the active image, else the top-most one
            active = self._viewer.layers.selection.active
            images = [layer for _, layer in self._image_choices()]
            if images:
                self._image.value = active if self.accepts_image(active) else images[-1]
