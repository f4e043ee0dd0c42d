"""The ``napari-flowinpaint`` command line (also ``python -m napari_flowinpaint``).

Each subcommand lives in its own module of this package, holding only its argument parsing
(``add_arguments(parser)``) and its printing (``run(args) -> int``); the work is a library
function that the Python API and the napari widgets use too. Only the module of the command
being run is imported, so ``napari-flowinpaint --help`` imports neither torch nor OpenCV.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from ... import __version__

__all__ = ["SUBCOMMANDS", "Terminated", "build_parser", "main"]

#: subcommand -> (module in napari_flowinpaint.tasks.cli, one-line help)
SUBCOMMANDS = {
    "repair": ("repair", "repair the damaged slices of a stack given a mask stack"),
    "evaluate": ("evaluate", "score repair methods on simulated damage of a real stack"),
    "demo": ("demo", "damage and repair a bundled sample stack, write a figure and metrics"),
    "train": ("train", "train the learned stages (refined reference, guided inpainting)"),
    "finetune": ("finetune", "fine-tune the bundled weights on your own stack"),
    "detect": ("detect", "propose a damage mask stack for a stack, with a per-slice report"),
    "auto": ("auto", "detect the damage of a whole stack, then repair it (one command)"),
    "evaluate-detection": ("evaluate_detection",
                           "score the damage detector on simulated damage of a real stack"),
    "train-detector": ("train_detector", "train the damage detector on simulated damage"),
    "finetune-detector": ("finetune_detector",
                          "adapt the damage detector to your own stack (self-supervised)"),
    "report": ("report", "write the QC report (one HTML file) of a repaired stack"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``only``, just that subcommand's options are built (and
    its module imported), the others are listed by name and help line."""
    parser = argparse.ArgumentParser(
        prog="napari-flowinpaint",
        description="Repair damaged sections of volume EM stacks guided by their neighbours "
                    "(FlowInpaint). Masks: nonzero marks damaged pixels.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in SUBCOMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        mod = importlib.import_module(f"{__name__}.{module}")
        p = sub.add_parser(name, help=help_text, description=mod.__doc__.strip().splitlines()[0])
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit code (0 done, 2 bad input, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=chosen if chosen in SUBCOMMANDS else "")
    args = parser.parse_args(argv)
    previous = _catch_sigterm()
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        kept = getattr(exc, "resume_hint", None)
        print(f"{what}: " + (kept or "nothing half-written was left behind."), file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except (ValueError, TypeError, OSError, ImportError) as exc:  # ImportError: an extra
        print(f"napari-flowinpaint {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (``timeout``, SLURM, ``docker stop``): unwound like Ctrl-C, so every
    output being written is removed and nothing half-written is left."""


def _raise_terminated(signum, frame):
    raise Terminated


def _catch_sigterm():
    """Turn SIGTERM into :class:`Terminated` while a command runs; returns the old handler
    (None when not on the main thread, where signals cannot be caught)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


if __name__ == "__main__":
    raise SystemExit(main())
