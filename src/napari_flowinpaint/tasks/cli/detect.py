"""Propose a damage mask stack for an image stack, with a per-slice report.

``napari-flowinpaint detect INPUT -o MASK [--report CSV]`` judges every slice with its
neighbours and writes a uint8 mask stack (1 = damaged; it feeds ``repair --mask``) and a CSV
with one row per slice. The work is
:func:`napari_flowinpaint.tasks.volume_detect.detect_to_file`.
"""

from __future__ import annotations

from pathlib import Path

from .common import (
    ProgressBar,
    add_absolute_argument,
    add_fold_margin_argument,
    add_format_argument,
    add_parallel_arguments,
    check_stack_outputs,
    input_path,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="image stack, axes (z, y, x): .tif/.tiff, .zarr, a folder of "
                             ".tif/.png sections, HDF5 (FILE.h5:/dataset), MRC, N5 or "
                             "precomputed (these and zarr also by URL: https://, gs://, s3://); "
                             "never modified")
    add_format_argument(parser)
    parser.add_argument("-o", "--output", required=True, metavar="MASK",
                        help="mask stack to write (uint8, 1 = damaged): .tif, .zarr, HDF5 "
                             "(FILE.h5[:/dataset]), MRC (.mrc) or a folder of sections (DIR/, "
                             "DIR/*.png)")
    parser.add_argument("--report", type=Path, default=None, metavar="CSV",
                        help="per-slice report: z, damaged fraction, regions, flagged")
    parser.add_argument("--overwrite", action="store_true", help="replace MASK if it exists")
    parser.add_argument("--sensitivity", type=float, default=0.5,
                        help="0-1, higher finds more (default 0.5)")
    parser.add_argument("--grow", type=int, default=0, help="grow regions by N pixels")
    parser.add_argument("--rectangles", action="store_true",
                        help="cover each region by its bounding rectangle")
    parser.add_argument("--min-area", type=int, default=100,
                        help="drop regions under N pixels (default 100)")
    add_absolute_argument(parser)
    add_fold_margin_argument(parser)
    parser.add_argument("--weights", type=Path, default=None,
                        help="detector weights (default: bundled)")
    add_parallel_arguments(parser)
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from ..volume_detect import detect_to_file

    check_stack_outputs(args.output)

    from ..outputs import output_lock

    with output_lock(args.output, args.report), \
            ProgressBar("detect", "slices", disable=args.no_progress) as bar:
        rows = detect_to_file(input_path(args), args.output, report=args.report,
                              overwrite=args.overwrite, sensitivity=args.sensitivity,
                              grow=args.grow, rectangles=args.rectangles,
                              min_area=args.min_area, weights=args.weights,
                              relative=not args.absolute,
                              fold_margin=not args.no_fold_margin, progress=bar,
                              workers=args.workers, scheduler=args.scheduler,
                              log=bar.write)
    flagged = [r["z"] for r in rows if r["flagged"]]
    listed = (f": {', '.join(map(str, flagged[:20]))}{' ...' if len(flagged) > 20 else ''}"
              if flagged else "")
    print(f"{len(flagged)} of {len(rows)} slice(s) show damage{listed}; wrote {args.output}"
          + (f" and {args.report}" if args.report else ""))
    return 0
