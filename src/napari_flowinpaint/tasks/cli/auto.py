"""Detect the damage of a whole stack, write the mask and the report, and repair it.

``napari-flowinpaint auto STACK -o REPAIRED`` runs ``detect`` (the mask goes to
``REPAIRED-damage.zarr`` and the per-section report to ``REPAIRED-report.csv`` beside the
output, unless ``--mask``/``--report`` say otherwise) and then ``repair`` with that mask: one
command for a whole volume, in parallel with ``--workers``/``--scheduler``. Run again after
an interruption, it continues where it stopped. The work is
:func:`napari_flowinpaint.tasks.volume_detect.auto_to_file`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ...engine.names import FLOW_METHODS, STAGES
from .common import (
    ProgressBar,
    add_absolute_argument,
    add_fold_margin_argument,
    add_format_argument,
    add_mode_argument,
    add_parallel_arguments,
    check_stack_outputs,
    input_path,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="STACK",
                        help="image stack: .tif/.tiff, .zarr, .ome.zarr, a folder of .tif/.png "
                             "sections, HDF5 (FILE.h5:/dataset), MRC, N5 or precomputed (these and "
                             "zarr also by URL: https://, gs://, s3://); never modified")
    add_format_argument(parser)
    parser.add_argument("-o", "--output", required=True, metavar="REPAIRED",
                        help="repaired stack to write: .tif/.tiff, .zarr, .ome.zarr, HDF5 "
                             "(FILE.h5[:/dataset]), MRC (.mrc) or a folder of sections (DIR/, "
                             "DIR/*.png)")
    parser.add_argument("--mask", default=None, metavar="MASK",
                        help="where the detected mask goes, in any format of REPAIRED "
                             "(default REPAIRED-damage.zarr; only a zarr mask is reused by a "
                             "rerun)")
    parser.add_argument("--report", type=Path, default=None, metavar="CSV",
                        help="per-section report (default REPAIRED-report.csv)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs (and redo a finished detection)")
    parser.add_argument("--sensitivity", type=float, default=0.5,
                        help="detection: 0-1, higher finds more (default 0.5)")
    parser.add_argument("--grow", type=int, default=2,
                        help="detection: grow regions by N pixels (default 2)")
    parser.add_argument("--min-area", type=int, default=100,
                        help="detection: drop regions under N pixels (default 100)")
    add_absolute_argument(parser)
    add_fold_margin_argument(parser)
    parser.add_argument("--detector-weights", type=Path, default=None,
                        help="detector weights (default: bundled)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="weights of the learned repair stages (default: the bundled "
                             "weights of --mode)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda[:N]'")
    parser.add_argument("--stages", default="guided_inpainting", choices=STAGES,
                        help="deepest repair stage to run (default: all three)")
    parser.add_argument("--flow-method", default="dis", choices=FLOW_METHODS)
    add_mode_argument(parser)
    parser.add_argument("--max-distance", type=int, default=3, metavar="N",
                        help="look up to N sections away for an undamaged neighbour")
    parser.add_argument("--qc-report", default=None, metavar="HTML",
                        help="the QC report of the repair (default REPAIRED's name-qc.html "
                             "beside it; see 'napari-flowinpaint report')")
    parser.add_argument("--no-qc-report", action="store_true",
                        help="do not write the QC report")
    add_parallel_arguments(parser)
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..outputs import output_lock

    check_stack_outputs(args.output, args.mask)  # before the detection, not after it
    with output_lock(args.output, *_mask_and_report(args), _qc_report(args)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..volume_detect import auto_to_file

    t0 = time.perf_counter()
    bars = {phase: ProgressBar(phase, "slices", disable=args.no_progress)
            for phase in ("detect", "repair")}
    try:
        rows, summary = auto_to_file(
            input_path(args), args.output, mask_output=args.mask, report=args.report,
            overwrite=args.overwrite, workers=args.workers, scheduler=args.scheduler,
            detect_options=dict(sensitivity=args.sensitivity, grow=args.grow,
                                min_area=args.min_area, weights=args.detector_weights,
                                relative=not args.absolute,
                                fold_margin=not args.no_fold_margin),
            repair_options=dict(weights=args.weights, device=args.device, stages=args.stages,
                                flow_method=args.flow_method, mode=args.mode,
                                max_distance=args.max_distance),
            progress=lambda phase, done, total: bars[phase](done, total),
            log=bars["repair"].write, qc_report=_qc_report(args) or False)
    except ValueError as exc:
        raise _for_auto(exc, args) from None
    finally:
        for bar in bars.values():
            bar.close()
    flagged = [r["z"] for r in rows if r["flagged"]]
    print(f"{len(flagged)} of {len(rows)} section(s) showed damage; repaired "
          f"{len(summary.repaired)} with method {summary.method!r} in "
          f"{time.perf_counter() - t0:.1f} s; wrote {summary.output}"
          + (f" and the QC report {summary.qc_report}" if summary.qc_report else ""))
    return 0


def _for_auto(exc: ValueError, args) -> ValueError:
    """The repair's advice reworded for ``auto``, which has no ``--slices``: repair the other
    sections with ``repair`` and the mask the detection wrote (kept, and reused by a rerun)."""
    text = str(exc)
    if "--slices" not in text:
        return exc
    from ..io.targets import written_stack

    mask = written_stack(args.mask) if args.mask else _mask_and_report(args)[0]
    head = text.split("; raise --max-distance")[0]
    return ValueError(
        f"{head}; raise --max-distance, or repair the other sections with "
        f"'napari-flowinpaint repair {args.input}"
        f"{f' --format {args.format}' if args.format else ''} --mask {mask} -o {args.output} "
        f"--slices LIST' (the detected mask {str(mask)!r} is kept; with no section left to repair "
        "from, e.g. a blank stack, there is nothing to repair).")


def _qc_report(args) -> Path | None:
    """Where the QC report goes (None: nowhere), as auto_to_file puts it."""
    from ..qc_report import qc_report_path

    if args.no_qc_report:
        return None
    return Path(args.qc_report) if args.qc_report else qc_report_path(args.output)


def _mask_and_report(args) -> tuple[Path, Path]:
    """Where the detected mask and the report go (by default beside the output, named
    after its stem, as :func:`~napari_flowinpaint.tasks.volume_detect.auto_to_file` puts
    them)."""
    from ..io.targets import stack_file

    out = stack_file(args.output)  # an HDF5 file without its dataset, a folder without *.png
    stem = out.name.split(".")[0]
    return (stack_file(args.mask) if args.mask else out.with_name(f"{stem}-damage.zarr"),
            Path(args.report) if args.report else out.with_name(f"{stem}-report.csv"))
