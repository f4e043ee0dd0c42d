"""Train the damage detector on simulated damage of real stacks.

``napari-flowinpaint train-detector -o RUN`` trains from scratch (or fine-tunes ``--init``
weights); running the same command again resumes. The work is
:func:`napari_flowinpaint.tasks.training.train_detector`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .common import ProgressBar

__all__ = ["add_arguments", "run"]


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--out", required=True, type=Path,
                        help="run folder: new, empty, or a run to resume")
    parser.add_argument("--overwrite", action="store_true",
                        help="write the run into a folder that already holds other files")
    parser.add_argument("--data", nargs="+", default=None, metavar="STACK[:Z0:Z1[:S,S..[:K,K..]]]",
                        help="training stacks, with optional z range, neighbour spacings and "
                             "sections to skip (real defects) (default: isbi2012_train and "
                             "fibsem_medulla_ts1 z<200 from ../shared/data)")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=192, help="crop side at half resolution")
    parser.add_argument("--width", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--init", default=None,
                        help="start from these detector weights ('bundled' for the shipped ones)")
    parser.add_argument("--p-clean", type=float, default=0.25,
                        help="share of undamaged samples (default 0.25)")
    parser.add_argument("--p-one-sided", type=float, default=0.1,
                        help="share of samples with a neighbour on one side only (default 0.1)")
    parser.add_argument("--p-damaged-neighbour", type=float, default=0.0,
                        help="share of samples with a damaged neighbour, to teach that its "
                             "damage is not the section's (default 0)")
    parser.add_argument("--p-continuing", type=float, default=0.0,
                        help="share of samples with a dark body drawn in the section and a "
                             "neighbour alike, to teach that it is tissue (default 0)")
    parser.add_argument("--continuing-lines", type=float, default=0.0,
                        help="share of the --p-continuing samples drawn as a thin dark line "
                             "through both sections (tissue a thin fold is told from) "
                             "instead of dark blobs (default 0)")
    parser.add_argument("--p-lab", type=float, default=0.0,
                        help="probability of each variation between labs: pixel size 0.5-2x, "
                             "gamma, noise, blur, and flicker of the neighbours (default 0)")
    parser.add_argument("--window", type=int, default=None,
                        help="read a random window of this many pixels from each section "
                             "instead of the whole section (faster on big sections)")
    parser.add_argument("--kind-weights", nargs="+", default=[], metavar="KIND=W",
                        help="draw some damage kinds more often, e.g. crack=2 fold=2")


def run(args) -> int:
    import torch

    from ..training import parse_source, train_detector

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    sources = [parse_source(t) for t in args.data] if args.data else None
    weights = {}
    for item in args.kind_weights:
        kind, _, w = item.partition("=")
        try:
            weights[kind] = float(w)
        except ValueError:
            raise ValueError(f"--kind-weights takes KIND=WEIGHT pairs, got {item!r}.") from None
    with ProgressBar("train-detector", "iterations") as bar:
        path = train_detector(args.out, sources=sources, iterations=args.iterations,
                              batch=args.batch, crop=args.crop, width=args.width, lr=args.lr,
                              seed=args.seed, checkpoint_every=args.checkpoint_every,
                              init=args.init, p_clean=args.p_clean,
                              p_one_sided=args.p_one_sided,
                              p_damaged_neighbour=args.p_damaged_neighbour,
                              p_continuing=args.p_continuing,
                              continuing_lines=args.continuing_lines, p_lab=args.p_lab,
                              kind_weights=weights, window=args.window,
                              callback=lambda info: bar.show(f"loss={info['loss']:.4f}"),
                              progress=bar, overwrite=args.overwrite)
    print(f"detector weights: {path}")
    return 0
