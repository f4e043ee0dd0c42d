"""The Repair widget's **Save result...**: write the ``"<image> repaired"`` layer to TIFF, zarr,
OME-Zarr (``.ome.zarr``, with a pyramid), HDF5 (``.h5``), MRC or a folder of sections
(a path ending in ``/``) with the image's voxel size, in a worker thread.

The writing is :func:`napari_flowinpaint.tasks.io.write_stack`: it reads the layer's data (a
:class:`~napari_flowinpaint.gui._view.RepairedView`, so a big lazy stack is never read whole)
one section at a time and writes atomically, so a cancelled or failed save leaves the
destination as it was. Sections read reach the widget through a Qt signal (queued to the
main thread); **Cancel** makes the next read raise, which aborts the write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Signal

from ..tasks.io import check_output_path, write_stack
from ..tasks.provenance import describe, write_sidecar
from ._common import INPUT_ERRORS, reason
from ._view import is_lazy

__all__ = ["SaveCancelled", "SaveMixin", "SaveRun", "SectionReader", "default_output",
           "voxel_size_nm"]

_SUFFIXES = (".ome.zarr", ".zarr", ".tiff", ".tif")


class SaveCancelled(Exception):
    """Raised by :class:`SectionReader` to stop the writer (Cancel, or the widget closed)."""


class _Relay(QObject):
    """Carries the count of sections read from the worker thread to the main thread."""

    sections = Signal(int)


class SectionReader:
    """What the writer reads: ``array`` (shape, dtype, indexing), telling ``on_read(n)`` how
    many sections each read took and raising :class:`SaveCancelled` once ``should_stop()``
    returns True."""

    def __init__(self, array, on_read):
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.on_read = on_read
        self.should_stop = lambda: False

    def __getitem__(self, key):
        if self.should_stop():
            raise SaveCancelled
        out = np.asarray(self.array[key])
        self.on_read(out.shape[0] if out.ndim == self.ndim else 1)
        return out


def voxel_size_nm(layer) -> tuple[tuple[float, float, float] | None, str]:
    """The voxel size (z, y, x) of a 3-D layer and its unit: in nanometres when the layer's
    units are lengths, else its scale as given (in its own unit); None when it is napari's
    default, a scale of 1 pixel, which says nothing."""
    scale = tuple(float(s) for s in layer.scale[-3:])
    units = tuple(getattr(layer, "units", None) or ())[-3:]
    try:
        nm = tuple(float(f"{(s * u).to('nanometer').magnitude:.12g}")
                   for s, u in zip(scale, units, strict=True))
        return nm, "nm"
    except Exception:  # noqa: BLE001 - no units, or not lengths (pixels): keep the scale
        unit = str(units[0]) if units else "pixel"
        if unit == "pixel" and scale == (1.0, 1.0, 1.0):
            return None, unit
        return scale, unit


def default_output(image) -> Path:
    """Where a repaired stack of ``image`` goes unless the user says otherwise: next to the
    image's file when known, else in the home folder: ``<name>-repaired`` with ``.ome.zarr``
    for a lazy stack and ``.tif`` for one in memory."""
    source = image.source.path
    base = Path(source) if source else Path.home() / image.name
    stem = base.name
    for suffix in _SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return base.with_name(f"{stem}-repaired{'.ome.zarr' if is_lazy(image.data) else '.tif'}")


@dataclass
class SaveRun:
    """A running save: where to, the layer saved, its sections, how many were read, whether
    it replaces an existing file, the voxel size and its unit, when it began, and what the
    worker returned ((path, None) when written, (None, exception) when it failed)."""

    path: Path
    layer: str
    total: int
    replacing: bool = False
    voxel: tuple | None = None
    unit: str = "nm"
    done: int = 0
    t0: float = field(default_factory=time.perf_counter)
    outcome: tuple | None = None


class SaveMixin:
    """Saves the result layer in the background.

    Expects the widget to hold the image combo box (``self._image``), ``self._save_run``
    (None when no save runs), ``self._halted`` and ``self.worker``, the attributes
    :attr:`choose_output` and :attr:`confirm_replace` (set by :meth:`_init_saving`), and to
    provide ``_find_result``, ``_refuse_if_running``, ``_set_running``, ``_on_errored`` and
    ``_on_finished``; the widget's ``_on_finished`` hands a finished save to
    :meth:`_finish_save`.
    """

    def _init_saving(self) -> None:
        self._save_run: SaveRun | None = None
        self._save_relay = _Relay()
        self._save_relay.sections.connect(self._on_sections_saved)
        #: Asks where to save: called with a suggested path, returns a path or None.
        #: Replaced in tests.
        self.choose_output = self._choose_output_dialog
        #: Asked before replacing an existing file: called with the question, returns True
        #: to replace. Replaced in tests.
        self.confirm_replace = self._confirm_dialog

    def save_result(self, path=None) -> None:
        """Write the ``"<image> repaired"`` layer to ``path`` (``.tif``, ``.zarr`` or
        ``.ome.zarr``; asked for when not given) with the image's voxel size, in the
        background. An existing file is replaced only when :attr:`confirm_replace` agrees;
        the image's own file never is."""
        if self._refuse_if_running():
            return
        image = self._image.value
        if image is None:
            self._warn("No image layer: pick the image whose repaired stack to save.")
            return
        result = self._find_result(image)
        if result is None:
            self._warn(f"Nothing to save yet: repair a slice of '{image.name}' first (the "
                       f"result goes to '{image.name} repaired').")
            return
        if path is None:
            path = self.choose_output(self._default_output(image))
            if not path:
                self._set_status("Save cancelled.")
                return
        path = Path(path).expanduser()
        protect = [p for p in (image.source.path, result.source.path) if p]
        storage = getattr(result.data, "storage_path", None)
        protect += [storage] if storage is not None else []
        try:
            check_output_path(path, protect=protect, overwrite=True)
        except (ValueError, OSError) as exc:
            self._warn(f"Cannot save to {path}: {exc}")
            return
        replacing = path.exists() or path.is_symlink()
        if replacing and not self.confirm_replace(
                f"{path} already exists. Replace it with '{result.name}'?"):
            self._set_status(f"Not saved: {path} already exists and was kept.")
            return
        voxel, unit = voxel_size_nm(image)
        run = SaveRun(path=path, layer=result.name, total=int(result.data.shape[0]),
                      replacing=replacing, voxel=voxel, unit=unit)
        reader = SectionReader(result.data, self._save_relay.sections.emit)
        from ._provenance import save_record

        record = save_record(self, image, result, path)  # run by the worker
        self._save_run, self._halted = run, None
        self._set_running(True)
        self._open_progress(run.total, f"Saving {path.name}")
        self._set_status(f"Saving '{result.name}' to {path}...")
        worker = create_worker(
            self._write, path, reader, replacing, protect, voxel, record,
            _connect={"returned": self._on_saved, "errored": self._on_errored,
                      "finished": self._on_finished},
        )
        reader.should_stop = lambda: worker.abort_requested
        self.worker = worker

    @staticmethod
    def _default_output(image) -> Path:
        return default_output(image)

    def _choose_output_dialog(self, suggested: Path) -> str | None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(
            self.native, "Save the repaired stack", str(suggested),
            "Stacks (*.tif *.tiff *.zarr *.h5 *.hdf5 *.mrc);;All files (*)",
            options=QFileDialog.Option.DontConfirmOverwrite)
        return path or None

    def _confirm_dialog(self, question: str) -> bool:
        from qtpy.QtWidgets import QMessageBox

        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(self.native, "Save result", question,
                                      buttons.Yes | buttons.No, buttons.No)
        return answer == buttons.Yes

    # ------------------------------------------------------------------ worker plumbing
    # Runs in the worker thread and returns (path, None), (None, None) when cancelled, or
    # (None, exception): every exception is caught, since the worker machinery (superqt)
    # never reports a RuntimeError and the widget would wait forever.
    @staticmethod
    def _write(path, reader, overwrite, protect, voxel, record=None):
        try:
            record = None if record is None else record()  # the provenance, as repair's
            written = write_stack(path, reader, overwrite=overwrite, protect=protect,
                                  voxel_size=voxel,
                                  description=None if record is None else describe(record))
            if record is not None:
                write_sidecar(path, record, protect=protect)
            return written, None
        except SaveCancelled:
            return None, None
        except Exception as exc:  # noqa: BLE001 - reported to the user, see above
            return None, exc

    def _on_sections_saved(self, n: int) -> None:
        run = self._save_run
        if run is None:
            return
        run.done += n
        self._set_status(f"Saving '{run.layer}': {min(run.done, run.total)} of {run.total} "
                         "slices written...")
        self._step_progress(n)  # last: it runs the Qt event loop

    def _on_saved(self, outcome) -> None:
        if self._save_run is not None:
            self._save_run.outcome = outcome

    def _finish_save(self, run: SaveRun, why: str | None = None) -> None:
        """Report a finished (or cancelled, or failed) save in the status and a notification;
        ``why`` says why it was stopped, when the widget or the viewer closed."""
        path, exc = run.outcome or (None, None)
        if path is not None:
            text = (f"Saved '{run.layer}' ({run.total} slices) to {path} in "
                    f"{time.perf_counter() - run.t0:.1f} s")
            if run.voxel is not None:
                text += f", voxel size {' x '.join(f'{v:g}' for v in run.voxel)} {run.unit}"
            self._set_status(text + ".")
            self._notify(show_info, text + ".")
            return
        if exc is not None:
            text = f"Saving to {run.path} failed: {reason(exc)}"
            self._set_status(text)
            self._notify(show_warning if isinstance(exc, INPUT_ERRORS) else show_error, text)
            return
        kept = "the existing one is unchanged" if run.replacing else "nothing was written"
        if why is not None:
            text = f"Save stopped: {why}; {kept}."
            self._set_status(text)
            self._notify(show_warning, text)
        else:
            self._set_status(f"Save cancelled; {kept}.")
