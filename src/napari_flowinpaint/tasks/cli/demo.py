"""Damage and repair a section of the bundled sample stack; write a figure and metrics.

``napari-flowinpaint demo [-o DIR] [--seed 0]``: see
:func:`napari_flowinpaint.tasks.evaluation.run_demo` for what is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="flowinpaint-demo", metavar="DIR",
                        help="folder for the outputs (default ./flowinpaint-demo; created if "
                             "needed)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier demo run in DIR")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the simulated damage (default 0)")


def run(args: argparse.Namespace) -> int:
    from ..evaluation import demo

    demo.run_demo(Path(args.output), seed=args.seed, overwrite=args.overwrite)
    return 0
