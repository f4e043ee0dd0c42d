"""Whole volumes, detection: ``detect`` (a mask stack and a CSV report) and ``auto``
(detection, then :func:`~napari_flowinpaint.tasks.volume.repair_to_file`), section by
section, in parallel on dask, into outputs that resume after an interruption (see
:mod:`.volume`, whose guarantees these share). A detected mask records what it was detected
from, and ``auto`` reuses it only for that input, those options and that report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..engine.files import check_output_path, same_or_nested, write_text
from .fingerprints import (
    ReadRecorder,
    bytes_digest,
    combine_digests,
    file_digest,
    stack_digest,
)
from .io import StackWriter, read_stack, read_voxel_size
from .io import check_output_path as check_stack_path
from .io.formats import for_cluster, resolved_source
from .io.targets import check_writable, limits_dtype, output_target, stack_file, written_stack
from .outputs import guarded, resumable_output
from .parallel import (
    SectionRunner,
    choose_workers,
    stack_source,
    use_worker_threads,
    write_section,
)
from .provenance import detect_record, stamp, write_sidecar
from .qc_report import qc_report_path, write_qc_report
from .volume import RepairSummary, drop_stale, repair_to_file

__all__ = ["detect_to_file", "auto_to_file"]

_DETECT_BLOCK = 8  # sections judged per task (neighbours' cues are shared within a block)
#: the attribute of a detected mask (zarr) that says what it was made from
_PROVENANCE = "flowinpaint_detection"


def _detect_task(stack, zs, options, scale, array_path, level=None):
    from .detection import iter_detect_damage, slice_report

    use_worker_threads()
    stack = ReadRecorder(stack_source(stack, "input"))
    out = []
    for z, m in iter_detect_damage(stack, list(zs), scale=scale, level=level, **options):
        if array_path is not None:
            write_section(array_path, z, m.astype(np.uint8))
        out.append(({"z": z, **slice_report(m)}, None if array_path else m))
    return out, {"input": stack.reads}  # what the block was computed from


def _detector_digest(weights) -> str | None:
    """The detector weights file's fingerprint: the bundled one's when none is given (an
    update of the package between a run and its resume is caught too)."""
    from ..engine.weights import bundled_detector_path

    return file_digest(weights if weights is not None else bundled_detector_path())


def _detection_options(sensitivity, grow, rectangles, min_area, weights, relative,
                       fold_margin=True) -> dict:
    """What identifies a detection's options (in its journal and its mask's provenance)."""
    return dict(sensitivity=sensitivity, grow=grow, rectangles=rectangles, min_area=min_area,
                weights=None if weights is None else str(weights), relative=bool(relative),
                fold_margin=bool(fold_margin))


def detect_to_file(input, output, *, report=None, overwrite: bool = False,
                   sensitivity: float = 0.5, grow: int = 0, rectangles: bool = False,
                   min_area: int = 100, weights=None, relative: bool = True,
                   fold_margin: bool = True, workers: int | None = 1, scheduler: str | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   log: Callable[[str], None] | None = None) -> list[dict]:
    """Detect damage on every section of a stack file; write the mask stack (uint8,
    1 = damaged: it feeds ``repair --mask``) and a CSV report (``z, damaged_fraction,
    regions, flagged``).

    Outputs are checked before the work (never onto the input or each other, never over an
    existing file without ``overwrite``); a zarr mask resumes like :func:`repair_to_file`'s
    output (sections whose sources, or the stack's measured scale, level or normal region
    size, changed since are judged again), and records what it was detected from (for
    :func:`auto_to_file`). Options as
    :func:`~napari_flowinpaint.tasks.detection.detect_damage` (what is normal for the stack,
    ``relative``, is measured once, before the work); ``workers``, ``scheduler``,
    ``progress``, ``should_stop`` and ``log`` as :func:`repair_to_file`.

    Returns
    -------
    list of dict
        The report's rows, in z order.
    """
    if scheduler is not None:  # the cluster's workers run in folders of their own
        input, output, report, weights = for_cluster(input, output, report, weights)
    from .detection import check_options
    from .detection.detector import normal_region_area, relative_min_area
    from .detection.evidence import stack_reference

    stack = read_stack(input, name="input")
    check_options(sensitivity, grow, min_area)
    if report is not None:
        if same_or_nested(report, stack_file(output)):
            raise ValueError(f"the report {str(report)!r} and the mask output "
                             f"{str(output)!r} are the same path; give two different files.")
        check_output_path(report, protect=(input,), overwrite=overwrite, what="report")
    check_stack_path(output, protect=(input,), overwrite=overwrite, dtype=np.uint8)
    options = _detection_options(sensitivity, grow, rectangles, min_area, weights, relative,
                                 fold_margin)
    n = stack.shape[0]
    run = {"command": "detect", "input": resolved_source(input), "shape": list(stack.shape),
           "options": options, "weights_digest": _detector_digest(weights)}
    description = "napari-flowinpaint detect: 1 = damaged pixel"
    voxel = read_voxel_size(input)
    store = resumable_output(output, stack.shape, np.uint8, run=run, overwrite=overwrite,
                             protect=(input,), voxel_size=voxel, description=description)
    writer = None if store is not None else StackWriter(
        output, stack.shape, np.uint8, overwrite=overwrite, protect=(input,),
        voxel_size=voxel, description=description)
    with guarded(writer, store):
        scale, level = stack_reference(stack, options.get("weights"))
        normal = 0
        if relative:
            normal = normal_region_area(stack, sensitivity=sensitivity, min_area=min_area,
                                        weights=options["weights"], scale=scale, level=level)
            if normal and log is not None:
                log(f"healthy sections of this stack show the detector regions of up to "
                    f"{normal} px: regions under "
                    f"{relative_min_area(min_area, normal, stack.shape[1] * stack.shape[2])} "
                    "px are not reported (--absolute reports them)")
        # what every section is judged against, measured on the stack as it is now
        basis = [[float(v) for v in scale], [float(v) for v in level], int(normal)]
        if store is not None and store.done:
            drop_stale(store, lambda z, row: row.get("basis") == basis, log, input=stack)
        journal = {} if store is None else store.done
        rows = {z: {k: v for k, v in r.items() if k not in ("reads", "basis")}
                for z, r in journal.items()}
        own = {z: r["reads"]["input"][str(z)] for z, r in journal.items()}  # its section
        task_options = dict(options, normal_area=normal)
        todo = [z for z in range(n) if z not in rows]
        blocks = [tuple(todo[i:i + _DETECT_BLOCK]) for i in range(0, len(todo), _DETECT_BLOCK)]
        workers = choose_workers(workers, len(todo) * stack.shape[1] * stack.shape[2] / 1e6,
                                 seconds_per_mp=0.25)
        with SectionRunner(workers, scheduler, log=log) as runner:
            src = str(input) if runner.parallel else stack
            target = None if store is None else str(store.array_path)
            items = [(_detect_task, src, zs, task_options, scale, target, level)
                     for zs in blocks]
            for _, (result, reads) in runner.map(items, should_stop=should_stop):
                for row, m in result:
                    z = row["z"]
                    if writer is not None:
                        writer[z] = m.astype(np.uint8)
                    else:
                        store.record(z, reads=reads, basis=basis,
                                     **{k: v for k, v in row.items() if k != "z"})
                    rows[z], own[z] = row, reads["input"][str(z)]
                if progress is not None:
                    progress(len(rows), n)
        if len(rows) < n:
            raise KeyboardInterrupt
        lines = ["z,damaged_fraction,regions,flagged"]
        lines += [f"{z},{rows[z]['damaged_fraction']:.6f},{rows[z]['regions']},"
                  f"{int(rows[z]['flagged'])}" for z in range(n)]
        text = "\n".join(lines) + "\n"
        if store is not None:  # what the mask was made from, for ``auto`` to reuse it
            store.annotate(**{_PROVENANCE: {
                "input": combine_digests(own[z] for z in range(n)), "options": options,
                "weights_digest": run["weights_digest"],
                "report": None if report is None else bytes_digest(text.encode())}})
        from ..engine.weights import bundled_detector_path

        record = detect_record(output, input=input, stack=stack, voxel=voxel, rows=rows,
                               options=dict(options, report=None if report is None
                                            else str(Path(report).absolute())),
                               weights=weights if weights is not None
                               else bundled_detector_path())
        stamp(writer if writer is not None else store, record, description)
        writer.commit() if writer is not None else store.commit()
    write_sidecar(output, record, protect=(input,))
    out = [dict(rows[z], z=z) for z in range(n)]
    if report is not None:
        write_text(report, text, overwrite=overwrite, protect=(input,), what="report")
    return out


def auto_to_file(input, output, *, mask_output=None, report=None, overwrite: bool = False,
                 detect_options: dict | None = None, repair_options: dict | None = None,
                 workers: int | None = 1, scheduler: str | None = None,
                 progress: Callable[[str, int, int], None] | None = None,
                 log: Callable[[str], None] | None = None,
                 qc_report=True) -> tuple[list[dict], RepairSummary]:
    """Detect the damage of a whole stack, write the mask and the report, repair it, and
    write the QC report of the repair.

    ``mask_output`` defaults to ``<output>-damage.zarr`` and ``report`` to
    ``<output>-report.csv`` beside ``output``; ``progress(phase, done, total)`` with phase
    ``"detect"`` then ``"repair"``. Run again after an interruption, it resumes the phase it
    was in. Returns the detection rows and the repair summary.

    An existing mask and report (without ``overwrite``) are used only when the mask records
    that it was detected from this input (the fingerprint of its sections) with these
    ``detect_options`` and weights, and the report is the one written with it; otherwise
    :class:`FileExistsError` says so (a TIFF mask records nothing: it is never reused).

    ``qc_report``: the QC report of the repair (:mod:`.qc_report`) goes to
    ``<output>-qc.html`` beside ``output`` (True, the default), to the path given, or
    nowhere (False); its path is the summary's ``qc_report``.
    """
    out = stack_file(output)  # an HDF5 file without its dataset, a folder without *.png
    stem = out.name.split(".")[0]
    mask_output = str(mask_output) if mask_output else str(out.with_name(f"{stem}-damage.zarr"))
    mask_file, mask_stack = stack_file(mask_output), written_stack(mask_output)
    report = Path(report) if report else out.with_name(f"{stem}-report.csv")
    for a, b in ((mask_file, out), (report, out), (report, mask_file)):
        if same_or_nested(a, b):
            raise ValueError(f"{str(a)!r} and {str(b)!r} are the same path; give different "
                             "files for the repaired stack, the mask and the report.")
    check_stack_path(output, protect=(input,), overwrite=overwrite)
    if limits_dtype(output):  # MRC, PNG: the input's dtype is checked before the detection
        check_writable(output_target(output), read_stack(input, name="input").dtype)
    done_mask = mask_file.exists() and not overwrite and report.exists()
    if done_mask:  # the detection phase of this run finished before an interruption?
        why = _not_made_from(input, mask_stack, report, detect_options or {})
        if why:
            raise FileExistsError(
                f"the mask {str(mask_output)!r} and the report {str(report)!r} exist but were "
                f"not made by a detection of this input with these options ({why}); pass "
                "--overwrite to detect again, or give other paths (--mask and --report).")
        qc = _qc_path(qc_report, output, (mask_file, report), input, overwrite)
        rows = [{"z": int(r.split(",")[0]), "flagged": r.rstrip().endswith("1")}
                for r in report.read_text().splitlines()[1:]]
        if log is not None:
            log(f"the mask {mask_output} and the report {report} were made from this input "
                "with these options: using them.")
    else:
        qc = _qc_path(qc_report, output, (mask_file, report), input, overwrite)
        rows = detect_to_file(input, mask_output, report=report, overwrite=overwrite,
                              workers=workers, scheduler=scheduler, log=log,
                              progress=None if progress is None
                              else lambda d, t: progress("detect", d, t),
                              **(detect_options or {}))
    summary = repair_to_file(input, mask_stack, output, overwrite=overwrite, workers=workers,
                             scheduler=scheduler, log=log, mask_source="detected",
                             progress=None if progress is None
                             else lambda d, t: progress("repair", d, t),
                             **(repair_options or {}))
    if qc is not None:
        summary.qc_report = write_qc_report(output, qc, overwrite=overwrite).path
    return rows, summary


def _qc_path(qc_report, output, others, input, overwrite) -> Path | None:
    """Where ``auto`` writes its QC report (None: nowhere), checked before any work."""
    if qc_report is False or qc_report is None:
        return None
    qc = qc_report_path(output) if qc_report is True else Path(qc_report)
    for other in (stack_file(output), *others):
        if same_or_nested(qc, other):
            raise ValueError(f"the QC report {str(qc)!r} and {str(other)!r} are the same "
                             "path; give another --qc-report.")
    check_output_path(qc, protect=(input,), overwrite=overwrite, what="QC report")
    return qc


def _not_made_from(input, mask_output, report, detect_options: dict) -> str | None:
    """Why the mask and report of an earlier detection cannot be reused for ``input`` and
    ``detect_options`` (what :func:`detect_to_file` recorded in the mask against the data as
    they are now: the input's sections, the options, the weights file, the report), or None
    when they can."""
    import inspect

    try:
        made = dict(read_stack(mask_output, name="mask").array.attrs).get(_PROVENANCE)
    except (ValueError, OSError, AttributeError):  # a TIFF mask, or no mask at all
        made = None
    if not isinstance(made, dict):
        return "they do not record what they were made from"
    defaults = inspect.signature(detect_to_file).parameters
    given = {k: detect_options.get(k, defaults[k].default) for k in
             ("sensitivity", "grow", "rectangles", "min_area", "weights", "relative",
              "fold_margin")}
    if json.loads(json.dumps(_detection_options(**given))) != made.get("options"):
        return "other detection options"
    if _detector_digest(given["weights"]) != made.get("weights_digest"):
        return "another detector weights file"
    if file_digest(report) != made.get("report"):
        return "the report was changed or belongs to another run"
    if stack_digest(read_stack(input, name="input")) != made.get("input"):
        return "another input: its sections differ from those the mask was detected on"
    return None
