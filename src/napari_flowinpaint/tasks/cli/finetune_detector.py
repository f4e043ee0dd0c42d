"""Adapt the damage detector to your own stack (self-supervised), from the bundled detector.

``napari-flowinpaint finetune-detector STACK -o WEIGHTS`` prints the held-out sections'
false alarms and F1 before and after; running it again resumes. Use the result with
``detect --weights WEIGHTS`` (or ``auto --detector-weights``). The work is
:func:`napari_flowinpaint.tasks.training.finetune_detector`.
"""

from __future__ import annotations

from .common import ProgressBar, add_finetune_arguments
from .finetune_output import announce_output

__all__ = ["add_arguments", "run", "describe_scores"]


def add_arguments(parser) -> None:
    add_finetune_arguments(parser, what="adapted detector weights", iterations=200,
                           mask_help="mask stack of known damage (nonzero): left out of "
                                     "the training")


def describe_scores(scores: dict) -> str:
    """One line for a :class:`~napari_flowinpaint.tasks.training.DetectorFinetuneResult`
    score: false alarms and F1."""
    return (f"{scores['false_alarms']:.0%} of {scores['sections']} real sections flagged "
            f"({scores['false_pixels']:.2%} of their pixels), simulated damage F1 "
            f"{scores['f1']:.2f}")


def run(args) -> int:
    from ..io import read_stack
    from ..training import finetune_detector

    announce_output(args)
    stack = read_stack(args.stack)
    damaged = read_stack(args.mask, name="mask", sparse=True) if args.mask else None
    with ProgressBar("finetune-detector", "iterations") as bar:
        res = finetune_detector(
            stack, args.out, damaged=damaged, weights=args.weights,
            iterations=args.iterations, spacing=args.spacing, held_out=args.held_out,
            seed=args.seed, progress=bar, overwrite=args.overwrite,
            protect=(args.stack, args.mask),
            callback=lambda info: bar.show(
                f"loss={info['loss']:.4f}" if "loss" in info else
                f"scoring the {'starting' if info['phase'] == 'before' else 'new'} "
                f"detector {info['step']}/{info['total']}"))
    if res.weights is None:
        print(f"stopped at iteration {res.iterations}; run again to resume.")
        return 1
    where = f"held-out sections {res.held_out[0]}-{res.held_out[-1]}"
    print(f"{where}, before: {describe_scores(res.before)}")
    if res.after is not None:
        print(f"{where}, after:  {describe_scores(res.after)}")
    print(f"weights written to {res.weights} (use: detect --weights {res.weights})")
    return 0
