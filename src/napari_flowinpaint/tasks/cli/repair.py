"""Repair the damaged sections of an image stack given a mask stack (nonzero = damaged).

``napari-flowinpaint repair INPUT --mask MASK -o OUTPUT`` reads an image stack (TIFF, zarr, a
folder of sections, HDF5, MRC...) and a mask stack of the same shape, repairs every section
whose mask marks damage from its nearest usable neighbours (read from the original stack;
damaged neighbours are skipped) and writes the result atomically: OUTPUT is either complete
or not there at all, even after Ctrl-C.
Pixels outside the mask, and sections with an empty mask, are copied unchanged.
The work is :func:`napari_flowinpaint.tasks.volume.repair_to_file`.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from ...engine.names import FLOW_METHODS, STAGES
from .common import (
    ProgressBar,
    add_format_argument,
    add_mode_argument,
    add_parallel_arguments,
    check_stack_outputs,
    input_path,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="image stack, axes (z, y, x): .tif/.tiff, .zarr, .ome.zarr, a "
                             "folder of .tif/.png sections, HDF5 (FILE.h5:/dataset), MRC, N5 or "
                             "precomputed (these and zarr also by URL: https://, gs://, s3://); "
                             "never modified")
    add_format_argument(parser)
    parser.add_argument("--mask", "-m", required=True, metavar="MASK",
                        help="mask stack of the same shape (any format INPUT may be); "
                             "nonzero marks damaged pixels")
    parser.add_argument("--output", "-o", required=True, metavar="OUTPUT",
                        help="repaired stack to write: .tif/.tiff, .zarr, .ome.zarr (with a "
                             "pyramid), HDF5 (FILE.h5, or FILE.h5:/dataset; default dataset "
                             "volumes/raw), MRC (.mrc) or a folder of one image per section "
                             "(DIR/ for TIFF, DIR/*.png for PNG); must not be INPUT")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUTPUT if it exists (the old one is removed only after "
                             "the new one is complete)")
    parser.add_argument("--confidence", metavar="OUT",
                        help="also write the confidence map of the repair (float32 stack in "
                             "[0, 1], 1 = reliable and outside the mask; any format of OUTPUT "
                             "but PNG sections)")
    parser.add_argument("--slices", metavar="LIST",
                        help="repair only these slices, e.g. '3,7-9' (default: every slice "
                             "whose mask marks damage)")
    parser.add_argument("--max-distance", type=int, default=3, metavar="N",
                        help="look up to N slices away for an undamaged neighbour (default 3)")
    parser.add_argument("--device", default="auto",
                        help="'auto' (GPU if available, else CPU), 'cpu' or 'cuda[:N]' "
                             "(default auto)")
    parser.add_argument("--weights", default=None, type=Path,
                        help="weights of the learned stages (.safetensors; default: the bundled "
                             "weights of --mode)")
    parser.add_argument("--stages", default="guided_inpainting", choices=STAGES,
                        help="deepest stage to run (default: all three)")
    parser.add_argument("--flow-method", default="dis", choices=FLOW_METHODS,
                        help="optical flow for the reference (default dis)")
    add_mode_argument(parser)
    add_parallel_arguments(parser)
    parser.add_argument("--no-progress", action="store_true",
                        help="do not draw the progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    from ..repair import format_slices
    from ..volume import repair_to_file

    check_stack_outputs(args.output, args.confidence)
    from ..outputs import output_lock

    t0 = time.perf_counter()
    with output_lock(args.output, args.confidence), \
            warnings.catch_warnings(record=True) as caught, \
            ProgressBar("repair", "slices", disable=args.no_progress) as bar:
        warnings.simplefilter("always")

        def progress(done: int, total: int) -> None:
            for w in caught:  # e.g. a section with a usable neighbour on one side only
                bar.write(f"warning: {w.message}")
            caught.clear()
            bar(done, total)

        summary = repair_to_file(input_path(args), args.mask, args.output, overwrite=args.overwrite,
                                 slices=args.slices, max_distance=args.max_distance,
                                 weights=args.weights, device=args.device, stages=args.stages,
                                 flow_method=args.flow_method, mode=args.mode,
                                 confidence=args.confidence,
                                 progress=progress,
                                 workers=args.workers, scheduler=args.scheduler,
                                 log=bar.write)
    seconds = time.perf_counter() - t0
    if summary.unmasked:
        bar.write(f"note: slice(s) {format_slices(summary.unmasked)} have an empty mask and "
                  "are copied unchanged.")
    todo = summary.repaired
    if todo:
        print(f"repaired {len(todo)} slice(s) ({format_slices(todo)}) of {summary.sections} "
              "with method "
              f"{summary.method!r} (flow {summary.flow_method}, device {summary.device}) in "
              f"{seconds:.1f} s; wrote {args.output}"
              + (f" and the confidence map {args.confidence}" if args.confidence else ""))
    else:
        print(f"no slice to repair (the mask marks no damage"
              f"{' in the chosen slices' if args.slices else ''}); wrote an unchanged copy "
              f"to {args.output} in {seconds:.1f} s")
    return 0
