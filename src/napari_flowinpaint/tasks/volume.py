"""Stack files and whole volumes: repair, section by section, in parallel on dask, into outputs
that resume after an interruption (detection and ``auto``: :mod:`.volume_detect`).

What the commands ``repair``, ``detect`` and ``auto`` run. Inputs are read one section at a
time (TIFF stacks are read into memory; use zarr or OME-Zarr for volumes larger than
memory). Everything that can be checked is checked before any work. Outputs:

* ``.tif``/``.tiff``: written atomically at the end (complete or absent); HDF5
  (``out.h5[:/dataset]``), MRC and a folder of sections (``out/``, ``out/*.png``) too, their
  sections written as they come into a hidden temporary (:mod:`.io.targets`);
* ``.zarr``/``.ome.zarr``: written section by section, by the workers themselves, into a
  hidden ``.NAME.partial.zarr`` with a journal (:class:`~napari_flowinpaint.tasks.parallel.
  ResumableStore`); the same command run again after a kill or Ctrl-C continues from there,
  and the store takes its name only when complete. Untouched sections are copied by the
  workers in blocks.

Nothing is reused unless it provably belongs to this run: each journal row keeps the
digests of the sections its result was computed from (:mod:`.fingerprints`), and a resumed
run does again every section whose sources changed since (a mask edited, an input
rewritten in place); a detected mask records what it was detected from, and ``auto``
reuses it only for that input, those options and that report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.files import remove_path
from .fingerprints import (
    ReadRecorder,
    SectionDigests,
    file_digest,
)
from .io import StackWriter, read_stack, read_voxel_size
from .io import check_output_path as check_stack_path
from .io.formats import for_cluster, resolved_source
from .outputs import Ones, aborting, guarded, resumable_output
from .parallel import (
    SectionRunner,
    choose_workers,
    copy_sections,
    release_memory,
    stack_source,
    worker_engine,
    write_section,
)
from .provenance import repair_record, stamp, write_sidecar
from .repair import damaged_pixels, find_neighbours, format_slices, parse_slices, repair_slice

__all__ = ["RepairSummary", "repair_to_file"]

_COPY_BLOCK = 16  # untouched sections copied per task


@dataclass
class RepairSummary:
    """What :func:`repair_to_file` did.

    Attributes
    ----------
    output : Path
    sections : int
        Sections in the stack.
    repaired : list of int
        The sections repaired (by this call and, when resumed, by the run before).
    unmasked : list of int
        Sections asked for (``slices``) whose mask is empty: copied unchanged.
    method, flow_method, device : str
        The engine's deepest stage, optical flow and device.
    resumed : int
        Sections found finished in a partial output of an interrupted run and kept (those
        whose input or mask sections changed since are done again).
    provenance : dict
        The record the outputs carry (:mod:`.provenance`).
    qc_report : Path or None
        The QC report written of it (by ``auto``; :mod:`.qc_report`).
    """

    output: Path
    sections: int
    repaired: list[int]
    unmasked: list[int]
    method: str
    flow_method: str
    device: str
    resumed: int = 0
    provenance: dict | None = None
    qc_report: Path | None = None


def _repair_task(stack, masks, z, max_distance, engine, array_path, confidence=False):
    """Repair section ``z``; write it (and first its confidence, when ``confidence`` is the
    confidence array's path) into the output store and return the digests of the sections
    it was computed from (``{"input": {z: digest}, "mask": {...}}``, for the journal), or
    return ``(section, confidence)`` (None unless ``confidence`` is True) when there is no
    store; either with the mean confidence over its damaged pixels, for its provenance
    (``(result, mean)``)."""
    stack, masks = stack_source(stack, "input"), stack_source(masks, "mask")
    if array_path is not None:  # what the section depends on goes into the journal
        stack, masks = ReadRecorder(stack), ReadRecorder(masks)
    in_worker = isinstance(engine, tuple)
    engine = worker_engine(engine) if in_worker else engine
    section, conf, report = repair_slice(stack, z, masks[z], masks=masks, inpainter=engine,
                                         max_distance=max_distance, return_confidence=True,
                                         return_report=True)
    if array_path is None:
        return (section, conf if confidence else None), report.confidence
    if confidence:
        write_section(confidence, z, conf)
    write_section(array_path, z, section)
    if in_worker:
        release_memory()
    return {"input": stack.reads, "mask": masks.reads}, report.confidence


def drop_stale(store, valid, log, **stacks) -> set[int]:
    """Check the finished sections of a resumed ``store`` against the data as they are now:
    a section is kept only when ``valid(z, row)`` and every section it was computed from
    (its journal's digests) is unchanged; the others are redone (and the log says so).
    Returns the sections kept."""
    digests = SectionDigests(**stacks)
    stale = store.discard([z for z, row in sorted(store.done.items())
                           if not (valid(z, row) and digests.matches(row.get("reads")))])
    if log is not None and (store.done or stale):
        log(f"resuming: {len(store.done)} of {store.shape[0]} sections were already finished"
            + (f"; section(s) {format_slices(stale)} are done again: the input, the mask or "
               "what they were computed from changed since" if stale else "") + ".")
    return set(store.done)


def _engine_info(settings=None, engine=None):
    """What the engine of ``settings`` (or ``engine``) runs: its deepest stage, optical
    flow, device and the weights file it loaded (None for the optical flow alone)."""
    engine = worker_engine(settings) if engine is None else engine
    weights = getattr(getattr(engine, "weights", None), "path", None)
    return (engine.method, engine.flow_method, str(engine.device),
            None if weights is None else str(weights))


def repair_to_file(input, mask, output, *, overwrite: bool = False, slices=None,
                   max_distance: int = 3, weights=None, device: str = "auto",
                   stages: str = "guided_inpainting", flow_method: str = "dis",
                   mode: str = "textured", inpainter=None, workers: int | None = 1,
                   scheduler: str | None = None, confidence=None, mask_source: str = "file",
                   progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   log: Callable[[str], None] | None = None) -> RepairSummary:
    """Repair every masked section of a stack file and write the result.

    Parameters
    ----------
    input, mask : str or Path
        The image stack and the mask stack of the same shape (``.tif``/``.tiff``/``.zarr``/
        ``.ome.zarr``; nonzero marks damaged pixels). Never modified.
    output : str or Path
        The repaired stack (``.tif``/``.tiff``/``.zarr``/``.ome.zarr``, HDF5
        ``out.h5[:/dataset]``, MRC, a folder of sections ``out/`` or ``out/*.png``: see
        :mod:`.io.targets`); its format is checked, against the input's dtype too, before
        any work.
    overwrite : bool, keyword-only
        Replace an existing ``output`` (the old one goes only once the new one is complete),
        and discard a partial output of another run.
    slices : str or sequence of int, optional, keyword-only
        Repair only these sections (``"3,7-9"`` or a list); default every masked one.
    max_distance : int, keyword-only
        How far to look for a usable neighbour on each side.
    weights, device, stages, flow_method, mode : keyword-only
        The engine's settings (:class:`~napari_flowinpaint.engine.FlowInpainter`; ``mode``
        is ``"textured"``, the default, or ``"faithful"``).
    inpainter : FlowInpainter, optional, keyword-only
        An engine to use instead (in this process only: ``workers=1``).
    workers : int or None, keyword-only
        Local worker processes (1: this process; None: the cores when the job is big
        enough to gain from them); ``scheduler`` to use a dask cluster.
    confidence : str or Path, optional, keyword-only
        Also write the confidence map of the repair here, a float32 stack of the input's
        shape in [0, 1] (1 = reliable, and 1 outside the mask and on sections not repaired;
        :func:`~napari_flowinpaint.engine.confidence.repair_confidence`). Any output format;
        written, like ``output``, only once complete, and resumed with it; removed again
        when ``output`` then fails to be written (a confidence map without its repair
        would only block the next run).
    mask_source : str, keyword-only
        Where the mask came from, for the provenance record every output carries
        (:mod:`.provenance`): ``"file"`` (default), ``"detected"`` or ``"painted"``.
    progress : callable(done, total), keyword-only
        Called after each section (repaired or copied).
    should_stop : callable() -> bool, keyword-only
        Polled between sections; True stops (a zarr output keeps its partial store to
        resume, as after Ctrl-C, and :class:`KeyboardInterrupt` is raised).
    log : callable(str), keyword-only
        Told what is worth knowing (the dask dashboard, a resumed run).

    Returns
    -------
    RepairSummary
    """
    if max_distance < 1:
        raise ValueError(f"max_distance (--max-distance) must be at least 1, got "
                         f"{max_distance}.")
    if inpainter is not None and ((workers or 1) > 1 or scheduler):
        raise ValueError("an inpainter object runs in this process only; give its settings "
                         "(weights, device, stages, flow_method, mode) to use workers.")
    if scheduler is not None:  # the cluster's workers run in folders of their own
        input, mask, output, confidence, weights = for_cluster(input, mask, output, confidence,
                                                                weights)
    from ..engine import SUPPORTED_DTYPES

    stack, masks = read_stack(input, name="input"), read_stack(mask, name="mask", sparse=True)
    if tuple(masks.shape) != tuple(stack.shape):
        raise ValueError(
            f"the mask {str(mask)!r} has shape {tuple(masks.shape)} but the input "
            f"{str(input)!r} has shape {tuple(stack.shape)}; they must match voxel for voxel.")
    if np.dtype(stack.dtype).type not in SUPPORTED_DTYPES:
        raise TypeError(f"the input has dtype {stack.dtype}; expected uint8, uint16, float32 or "
                        "float64. Convert the stack first (e.g. in Fiji: Image > Type).")
    check_stack_path(output, protect=(input, mask), overwrite=overwrite, dtype=stack.dtype)
    if confidence is not None:
        check_stack_path(confidence, protect=(input, mask, output), overwrite=overwrite,
                         dtype=np.float32)
    pixels = damaged_pixels(masks)  # one read of the mask: which sections, and how much
    damaged = list(pixels)
    todo, unmasked = damaged, []
    if slices is not None:
        wanted = (parse_slices(slices, stack.shape[0]) if isinstance(slices, str)
                  else sorted({int(z) for z in slices}))
        unmasked = [z for z in wanted if z not in set(damaged)]
        todo = [z for z in wanted if z in set(damaged)]
    orphans = [z for z in todo if find_neighbours(
        stack, z, masks=masks, max_distance=max_distance, hole=masks[z]) == (None, None)]
    if orphans:
        raise ValueError(
            f"slice(s) {format_slices(orphans)} have no usable neighbour within {max_distance} "
            "slices (the neighbours are blank or more than half damaged); raise "
            "--max-distance or leave them out with --slices.")
    from ..engine.texture import check_mode

    settings = (None if weights is None else str(weights), device, stages, flow_method,
                check_mode(mode))
    # what the journal is for: the sections finished are checked one by one on resume
    # (their digests), so the request (``slices``), not the list of damaged sections
    run = {"command": "repair", "input": resolved_source(input),
           "mask": resolved_source(mask), "shape": list(stack.shape),
           "dtype": str(stack.dtype), "slices": None if slices is None else wanted,
           "max_distance": max_distance,
           "engine": list(settings) if inpainter is None else repr(inpainter),
           "confidence": confidence is not None}
    workers = 1 if inpainter is not None else choose_workers(
        workers, len(todo) * stack.shape[1] * stack.shape[2] / 1e6, seconds_per_mp=0.5)
    with SectionRunner(workers, scheduler, log=log) as runner:
        # the engine first (a bad device or weights file fails before any output exists)
        engine = settings if runner.parallel else (
            inpainter if inpainter is not None else worker_engine(settings))
        *info, used_weights = (runner.call(_engine_info, settings) if inpainter is None
                               else _engine_info(engine=inpainter))
        voxel = read_voxel_size(input)
        # the file as it is now, not its name (the bundled one too: an update of the package
        # between a run and its resume must not mix two networks' repairs)
        from ..engine.weights import bundled_weights_path

        run["weights_digest"] = file_digest(
            weights if weights is not None or inpainter is not None
            or stages == "initial_reference" else bundled_weights_path(mode))
        store = resumable_output(output, stack.shape, stack.dtype, run=run,
                                 overwrite=overwrite, protect=(input, mask), voxel_size=voxel,
                                 confidence=confidence is not None)
        writer = None if store is not None else StackWriter(
            output, stack.shape, stack.dtype, base=stack, overwrite=overwrite,
            protect=(input, mask), voxel_size=voxel)
        with guarded(writer, store):  # from here a failure leaves no partial store behind
            conf_writer = None if confidence is None else StackWriter(
                confidence, stack.shape, np.float32, base=Ones(stack.shape),
                overwrite=overwrite, protect=(input, mask, output), voxel_size=voxel,
                description="FlowInpaint repair confidence: 1 = reliable, 1 where not repaired")
            with aborting(conf_writer):
                repairing = set(todo)
                done = set() if store is None or not store.done else drop_stale(
                    store, lambda z, row: row.get("kind") == (
                        "repaired" if z in repairing else "copied"),
                    log, input=stack, mask=masks)
                src_stack, src_masks = ((str(input), str(mask)) if runner.parallel
                                        else (stack, masks))
                target = None if store is None else str(store.array_path)
                conf_target = (confidence is not None) if store is None else (
                    store.confidence_path and str(store.confidence_path))
                left = [z for z in todo if z not in done]
                if runner.parallel:  # the biggest repairs first: no worker is left with one
                    left.sort(key=lambda z: -pixels[z])
                items = [(_repair_task, src_stack, src_masks, z, max_distance, engine, target,
                          conf_target) for z in left]
                if store is not None:
                    rest = [z for z in range(stack.shape[0])
                            if z not in repairing and z not in done]
                    items += [(copy_sections, src_stack, target, tuple(rest[i:i + _COPY_BLOCK]))
                              for i in range(0, len(rest), _COPY_BLOCK)]
                total, count = stack.shape[0] if store is not None else len(todo), len(done)
                # the mean confidence of each section repaired (by an earlier run too)
                means = {} if store is None else {z: row.get("confidence") for z, row in
                                                  store.done.items() if z in repairing}
                for item, result in runner.map(items, should_stop=should_stop):
                    if item[0] is copy_sections:
                        for z in item[3]:
                            store.record(z, kind="copied", reads={"input": {str(z): result[z]}})
                        count += len(item[3])
                    else:
                        z, (result, means[item[3]]) = item[3], result
                        if writer is not None:
                            writer[z], conf = result
                            if conf_writer is not None:
                                conf_writer[z] = conf
                        else:
                            store.record(z, kind="repaired", reads=result, confidence=means[z])
                        count += 1
                    if progress is not None:
                        progress(count, total)
                if count < total:  # should_stop() said so
                    raise KeyboardInterrupt
                asked = settings if inpainter is None else (
                    None, device, inpainter.stages[-1], inpainter.flow_method, inpainter.mode)
                record = repair_record(
                    output, input=input, stack=stack, voxel=voxel, mask=mask, masks=masks,
                    mask_source=mask_source, pixels={z: pixels[z] for z in todo},
                    means=means, weights=used_weights, confidence=confidence,
                    options=dict(zip(("device", "stages", "flow_method", "mode"), asked[1:],
                                     strict=True), max_distance=max_distance,
                                 slices=None if slices is None else wanted,
                                 method=info[0], device_used=info[2]),
                    resumed=len(done), unmasked=unmasked)
                stamp(writer if writer is not None else store, record)
                if conf_writer is not None:
                    conf_record = dict(record, output=dict(
                        record["output"], path=str(Path(confidence).absolute()),
                        kind="confidence map"))
                    stamp(conf_writer, conf_record, conf_writer.description)
                    if store is not None:  # from the store's own array, a section at a time
                        import zarr

                        kept = zarr.open_array(str(store.confidence_path), mode="r")
                        for z in todo:
                            conf_writer[z] = kept[z]
                    conf_writer.commit()
                try:
                    path = writer.commit() if writer is not None else store.commit()
                except BaseException:
                    if conf_writer is not None:  # no confidence map of a failed repair: it
                        remove_path(conf_writer.path)  # would block the next run
                    raise
    write_sidecar(path, record, protect=(input, mask))
    if confidence is not None:
        write_sidecar(confidence, conf_record, protect=(input, mask))
    return RepairSummary(path, stack.shape[0], todo, unmasked, *info, resumed=len(done),
                         provenance=record)
