"""Score the damage detector on simulated damage of a real stack.

``napari-flowinpaint evaluate-detection STACK`` damages sections with every kind of
simulated damage and prints pixel F1 per kind and the share of real sections flagged. The
work is :func:`napari_flowinpaint.tasks.evaluation.evaluate_detection`.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..simulation.damage import DAMAGE_KINDS
from .common import ProgressBar, add_absolute_argument

__all__ = ["add_arguments", "run"]


def add_arguments(parser) -> None:
    parser.add_argument("input", type=Path, help="a real stack (TIFF, Zarr, ...), taken as clean")
    parser.add_argument("--spacing", type=int, default=1,
                        help="use every N-th section (3-5 for isotropic FIB-SEM)")
    parser.add_argument("--z-range", default=None, help="sections to use, e.g. 200: or 0:100")
    parser.add_argument("--samples", type=int, default=20, help="damaged sections per kind")
    parser.add_argument("--kinds", nargs="+", default=list(DAMAGE_KINDS), choices=DAMAGE_KINDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sensitivity", type=float, default=0.5)
    parser.add_argument("--min-area", type=int, default=100,
                        help="smallest region in pixels (default 100)")
    add_absolute_argument(parser)
    parser.add_argument("--neighbour-damage", type=float, default=0.0, metavar="P",
                        help="damage each neighbour of a judged section too, with "
                             "probability P (default 0: real neighbours)")
    parser.add_argument("--no-continuing", action="store_true",
                        help="skip the row of real sections with a dark body continuing "
                             "into a neighbour")
    parser.add_argument("--weights", type=Path, default=None,
                        help="detector weights to score (default: bundled)")
    parser.add_argument("--known-damaged", type=int, nargs="+", default=[], metavar="Z",
                        help="real sections known to carry damage: left out of the "
                             "undamaged count, reported apart, and never given "
                             "simulated damage")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the --json file if it exists")


def run(args) -> int:
    from ...engine.files import check_output_path, write_text
    from ..evaluation import evaluate_detection, format_detection_table
    from ..io import read_stack

    if args.json:
        check_output_path(args.json, protect=(args.input,), overwrite=args.overwrite,
                          what="--json")
    stack = read_stack(args.input)  # a big zarr is read a few sections at a time
    with ProgressBar("evaluate-detection", "slices") as bar:
        rep = evaluate_detection(stack, spacing=args.spacing, z_range=args.z_range,
                                 samples=args.samples, kinds=args.kinds, seed=args.seed,
                                 sensitivity=args.sensitivity, min_area=args.min_area,
                                 neighbour_damage=args.neighbour_damage,
                                 continuing=not args.no_continuing, weights=args.weights,
                                 known_damaged=args.known_damaged,
                                 relative=not args.absolute, progress=bar)
    print(format_detection_table(rep))
    print(f"median {1000 * rep['seconds_per_slice']:.0f} ms per slice of "
          f"{rep['settings']['shape'][0]}x{rep['settings']['shape'][1]}")
    if args.json:
        write_text(args.json, json.dumps(rep, indent=2), protect=(args.input,),
                   overwrite=args.overwrite, what="--json")
    return 0
