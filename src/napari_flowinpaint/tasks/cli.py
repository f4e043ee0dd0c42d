"""The ``napari-flowinpaint`` command line (also ``python -m napari_flowinpaint``).

Each subcommand lives in its own tasks module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__

#: subcommand -> (module in napari_flowinpaint.tasks, one-line help)
SUBCOMMANDS = {
    "repair": ("repair_cmd", "repair the damaged slices of a stack given a mask stack"),
    "evaluate": ("evaluate", "score repair methods on simulated damage of a real stack"),
    "demo": ("demo", "damage and repair a bundled sample stack, write a figure and metrics"),
    "train": ("train", "train the learned stages (refined reference, guided inpainting)"),
    "finetune": ("finetune", "fine-tune the bundled weights on your own stack"),
    "detect": ("detect", "propose a damage mask stack for a stack, with a per-slice report"),
    "evaluate-detection": ("evaluate_detection",
                           "score the damage detector on simulated damage of a real stack"),
    "train-detector": ("train_detector", "train the damage detector on simulated damage"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-flowinpaint",
        description="Repair damaged sections of volume EM stacks guided by their neighbours "
                    "(FlowInpaint). Masks: nonzero marks damaged pixels.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in SUBCOMMANDS.items():
        mod = importlib.import_module(f"napari_flowinpaint.tasks.{module}")
        p = sub.add_parser(name, help=help_text, description=mod.__doc__.strip().splitlines()[0])
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left behind.", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as exc:
        print(f"napari-flowinpaint {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
