"""Score repair methods on simulated damage of a real stack (PSNR, SSIM, FSIM, sharpness).

``napari-flowinpaint evaluate --data STACK --spacing K`` prints a markdown table and can
write the configuration and results as JSON. The work is
:func:`napari_flowinpaint.tasks.evaluation.evaluate`.
"""

from __future__ import annotations

import sys
import warnings

from ..evaluation.baselines import DEFAULT_METHODS, METHODS
from ..simulation.masks import MASK_KINDS
from .common import ProgressBar

__all__ = ["add_arguments", "run"]


def add_arguments(parser) -> None:
    """Options of ``napari-flowinpaint evaluate``."""
    parser.add_argument("--data", required=True, metavar="STACK",
                        help="image stack: .tif/.tiff or .zarr, axes (z, y, x)")
    parser.add_argument("--spacing", type=int, required=True, metavar="K",
                        help="distance in sections from the damaged section to each "
                             "neighbour (1 for ssTEM, 3-5 for isotropic FIB-SEM)")
    parser.add_argument("--z-range", default=None, metavar="A:B",
                        help="sections to sample from, Python slice syntax (e.g. 200: "
                             "for z >= 200; write --z-range=-50: when it starts with a "
                             "minus); default: all")
    parser.add_argument("--crop", type=int, default=256,
                        help="side of the square crops in pixels, 0 for whole sections "
                             "(default 256)")
    parser.add_argument("--samples", type=int, default=100,
                        help="samples per damage ratio (default 100)")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.1, 0.3, 0.5],
                        help="damaged fractions (default 0.1 0.3 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                        metavar="METHOD",
                        help=f"repair methods to score, from: {', '.join(METHODS)} "
                             f"(default: {' '.join(DEFAULT_METHODS)})")
    parser.add_argument("--mask-kind", choices=MASK_KINDS, default="mixed",
                        help="shape of the simulated damage (default mixed)")
    parser.add_argument("--json", default=None, metavar="OUT.json",
                        help="also write the configuration and results as JSON")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the --json file if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"napari-flowinpaint evaluate: warning: {message}", file=sys.stderr)


def run(args) -> int:
    """Run ``napari-flowinpaint evaluate``: print a markdown table, optionally write JSON."""
    from ...engine.files import check_output_path
    from ..evaluation import evaluate, format_table, write_report
    from ..io import read_stack

    if args.json:  # before the work: never onto the data, the folder must exist
        check_output_path(args.json, protect=(args.data,), overwrite=args.overwrite,
                          what="--json")
    stack = read_stack(args.data)
    with warnings.catch_warnings(), ProgressBar("evaluate", "samples",
                                                disable=args.quiet) as bar:
        warnings.showwarning = _show_warning
        report = evaluate(
            stack, spacing=args.spacing, z_range=args.z_range, crop=args.crop,
            samples=args.samples, ratios=args.ratios, seed=args.seed, methods=args.methods,
            mask_kind=args.mask_kind, progress=bar,
        )
    config = {"data": str(args.data), "spacing": args.spacing, "z_range": args.z_range,
              "crop": args.crop, "samples": args.samples, "ratios": list(args.ratios),
              "seed": args.seed, "methods": list(args.methods), "mask_kind": args.mask_kind,
              "json": args.json}
    # the resolved values (z range as start:stop, stack shape, data range...) win
    report = {"config": {**config, **report["config"]}, "results": report["results"]}
    print(format_table(report))
    if args.json:
        write_report(args.json, report, protect=(args.data,), overwrite=args.overwrite)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
