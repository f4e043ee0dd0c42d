"""The work of the "Batch repair" widget, in its worker thread, and what it says when done.

Nothing here repairs or detects by itself: :func:`batch_work` strings together the tasks
layer's functions, as the command line does for a stack: Auto-detect's detection
(:func:`~napari_flowinpaint.gui._detect.iter_proposals`, i.e.
:func:`~napari_flowinpaint.tasks.detection.iter_detect_damage` after learning what is
normal for the stack), :func:`~napari_flowinpaint.tasks.repair.iter_repair_stack` (the
repair of the masked sections) and :func:`~napari_flowinpaint.tasks.io.write_stack`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.names import STAGE_LABELS
from ..tasks.io import write_stack
from ..tasks.repair import format_slices, iter_repair_stack
from ._common import reason
from ._detect import iter_proposals
from ._save import SaveCancelled, SectionReader

__all__ = ["BatchJob", "batch_work", "job_report"]


@dataclass
class BatchJob:
    """A running batch repair.

    ``stack`` is read, never written; ``masks`` is the mask read (a snapshot of the chosen
    Labels layer, or the array Auto-detect fills, shown as ``mask_layer``); the repaired
    sections go into ``view`` (a :class:`~napari_flowinpaint.gui._view.RepairedView` of
    ``stack``, shown as ``layer`` once the first one is done) and, with ``path``, into
    that file at the end. The rest is what happened, for the status line.
    """

    image: object
    stack: object
    masks: object
    zs: list[int]
    view: object
    detect: bool = False
    grow: int = 0
    path: Path | None = None
    protect: list = field(default_factory=list)
    voxel: tuple | None = None
    mask_name: str = ""
    mask_layer: object = None
    layer: object = None
    t0: float = field(default_factory=time.perf_counter)
    phase: str = "detect"  # then scan, repair, write: set by the worker
    learn_total: int = 0
    checked: int = 0
    found: list[int] = field(default_factory=list)
    todo: list[int] | None = None
    done: list[int] = field(default_factory=list)
    failed: tuple[int, str] | None = None
    written: Path | None = None
    write_error: Exception | None = None
    sections_written: int = 0
    method: str = ""


def batch_work(job: BatchJob, engine, weights=None, should_stop=lambda: False):
    """Detect (when ``job.detect``), repair and write, in the worker thread.

    ``engine`` is a callable returning the :class:`~napari_flowinpaint.engine.FlowInpainter`
    (made on first use, here: a slow start does not freeze the viewer); ``weights`` the
    detector's. Yields ``("learn", (judged, to judge))``, ``("detected", z, found)``,
    ``("scanned", z)``, ``("plan", todo)``, ``("repaired", z)`` and ``("failed", z,
    reason)``; the file is written last, its outcome kept in ``job`` (``written`` or
    ``write_error``) and stopped when ``should_stop()``. Every exception is caught: the
    worker machinery (superqt) never reports a RuntimeError, which torch raises for many
    failures, and the widget would wait forever.
    """
    z, todo, done = job.zs[0], [], 0
    try:
        if job.detect:
            for z, found in iter_proposals(job.stack, job.zs, grow=job.grow, weights=weights):
                if z is None:
                    yield "learn", found
                    continue
                job.masks[z] = np.asarray(found, dtype=job.masks.dtype)  # its own new array
                yield "detected", z, bool(found.any())
        job.phase = "scan"
        for z in job.zs:
            if np.asarray(job.masks[z]).any():
                todo.append(z)
            if not job.detect:
                yield "scanned", z
        job.phase = "repair"
        yield "plan", todo
        inpainter = engine() if todo else None
        for z, section in iter_repair_stack(job.stack, job.masks, slices=todo,
                                            inpainter=inpainter):
            job.view[z] = section
            job.method, done = inpainter.method, done + 1
            yield "repaired", z
    except Exception as exc:  # noqa: BLE001 - reported to the user, see above
        yield "failed", (todo[done] if job.phase == "repair" else z), reason(exc)
        return
    if job.path is None or not todo:
        return
    yield "writing", len(todo)  # Cancel pressed before this stops here: nothing is written
    job.phase = "write"
    reader = SectionReader(job.view, job_counter(job))
    reader.should_stop = should_stop
    try:
        job.written = write_stack(job.path, reader, protect=job.protect, voxel_size=job.voxel)
    except SaveCancelled:
        pass
    except Exception as exc:  # noqa: BLE001 - reported to the user, see above
        job.write_error = exc


def job_counter(job: BatchJob):
    """What the file writer calls with the sections it read: counted into ``job``."""

    def count(n: int) -> None:
        job.sections_written += int(n)

    return count


def _listed(zs) -> str:
    return format_slices(zs) if zs else "none"


def job_report(job: BatchJob, stopped: str | None) -> tuple[str, str]:
    """What to say about a finished (or stopped, or failed) job: ``(severity, text)`` with
    severity ``"info"``, ``"warning"`` or ``"error"``. ``stopped`` says why it was stopped
    (Cancel, the widget closed...), or None when it ran to its end."""
    where = f"'{job.layer.name}'" if job.layer is not None else None
    seconds = time.perf_counter() - job.t0
    detected = (f"damage found on {len(job.found)} of {job.checked} slices checked"
                + (f" ({_listed(job.found)})" if job.found else "")
                + (f", kept in '{job.mask_name}'" if job.found else ""))
    if job.failed is not None:
        z, text = job.failed
        what = "Auto-detect" if job.phase == "detect" else "Repair"
        return "error", (f"{what} failed on slice {z}: {text}; {len(job.done)} of "
                         f"{len(job.todo or [])} slices repaired"
                         + (f" (kept in {where})" if where and job.done else "") + ".")
    if job.todo is None:  # stopped before the repair began
        return "warning", (f"Batch repair stopped: {stopped}; "
                           + (f"{detected}; " if job.detect else "")
                           + "nothing was repaired.")
    if not job.todo:
        return "warning", (f"No damage in slices {_listed(job.zs)} of '{job.mask_name}'"
                           + (f" ({job.checked} checked by Auto-detect)" if job.detect else "")
                           + ": nothing to repair.")
    method = STAGE_LABELS.get(job.method, job.method) or "no method"
    counted = (f"{len(job.done)} of {len(job.todo)} slices repaired "
               f"({_listed(job.done)}) by {method}")
    if stopped is not None and job.phase == "repair":
        return "warning", (f"Batch repair stopped: {stopped}; {counted}, kept in {where}; "
                           "the other slices are unchanged"
                           + ("; the file was not written (it would be incomplete)."
                              if job.path is not None else "."))
    prefix = f"{detected}; " if job.detect else ""
    text = (f"{prefix}{len(job.done)} slice{'s' * (len(job.done) != 1)} repaired "
            f"({_listed(job.done)}) by {method} in {seconds:.1f} s, in {where}")
    if job.path is None:
        return "info", text + "."
    if job.written is not None:
        return "info", text + f"; written to {job.written}."
    if job.write_error is not None:
        return "error", text + f"; writing {job.path} failed: {reason(job.write_error)}"
    return "warning", text + f"; writing {job.path} was stopped ({stopped}): nothing written."
