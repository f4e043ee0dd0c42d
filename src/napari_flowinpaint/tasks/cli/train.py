"""Train the refined-reference and guided-inpainting networks (stage 1, then stage 2).

``napari-flowinpaint train -o RUN`` trains from scratch (or ``--init`` weights); running the
same command again resumes from the run's checkpoint. The work is
:func:`napari_flowinpaint.tasks.training.train`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .common import ProgressBar

__all__ = ["add_arguments", "run"]


def add_arguments(parser) -> None:
    parser.description = (
        "Train the refined-reference and guided-inpainting networks (stage 1, then stage 2). "
        "Run again with the same OUT to resume from its checkpoint.")
    parser.add_argument("-o", "--out", required=True, type=Path,
                        help="run folder: new, empty, or a run to resume")
    parser.add_argument("--overwrite", action="store_true",
                        help="write the run into a folder that already holds other files")
    parser.add_argument("--data", nargs="+", default=None, metavar="STACK[:Z0:Z1[:S,S..[:K,K..]]]",
                        help="training stacks with optional z range, neighbour spacings and "
                             "sections to skip "
                             "(default: isbi2012_train and fibsem_medulla_ts1 z<200 from "
                             "../shared/data)")
    from ..training import TrainSettings

    d = TrainSettings()
    for name in ("flow_iters", "gan_iters", "gan_warmup", "adv_ramp", "batch", "crop", "seed",
                 "checkpoint_every"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("lr_flow", "lr_gen", "lr_disc"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name))
    parser.add_argument("--config", default="cpu", help="network configuration: cpu or gpu")
    parser.add_argument("--no-fal", action="store_true", help="ablation: no FAL layers")
    parser.add_argument("--no-refined", action="store_true",
                        help="ablation: the generator sees the initial reference")
    parser.add_argument("--no-gan", action="store_true", help="ablation: no adversarial loss")
    parser.add_argument("--residual", action="store_true", default=None,
                        help="generator predicts a correction of the refined reference "
                             "(switches --init weights to it, starting from the reference)")
    parser.add_argument("--adv-weight", type=float, default=None,
                        help="lambda_adv of Eq. 18-19 (default: the configuration's, 0.1)")
    parser.add_argument("--recon", choices=("l1", "l2"), default=None,
                        help="distance of the reconstruction term of Eq. 18 (default: l1)")
    parser.add_argument("--gen-ssim-weight", type=float, default=d.gen_ssim_weight,
                        help="weight of the SSIM term on the generator's output")
    parser.add_argument("--gen-grad-weight", type=float, default=d.gen_perceptual_weight,
                        help="weight of the gradient-pyramid term (the perceptual "
                             "substitute) on the generator's output")
    parser.add_argument("--p-lab", type=float, default=0.0,
                        help="probability of each variation between labs in the samples: "
                             "pixel size 0.5-2x, noise, blur, flicker of the neighbours")
    parser.add_argument("--init", default=None, help="start from these weights ('bundled')")
    parser.add_argument("--init-flow", default=None,
                        help="take only the refined-reference network from these weights")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: all cores; 1 leaves a core free for "
                             "other work while training runs in the background)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop with a checkpoint after this many minutes")


def run(args) -> int:
    import torch

    from ..training import TrainSettings, parse_source, train

    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    s = TrainSettings(config=args.config, flow_iters=args.flow_iters, gan_iters=args.gan_iters,
                      gan_warmup=args.gan_warmup, adv_ramp=args.adv_ramp,
                      batch=args.batch, crop=args.crop, seed=args.seed,
                      checkpoint_every=args.checkpoint_every, lr_flow=args.lr_flow,
                      lr_gen=args.lr_gen, lr_disc=args.lr_disc, use_fal=not args.no_fal,
                      use_refined=not args.no_refined, use_gan=not args.no_gan,
                      adv_weight=args.adv_weight, residual=args.residual, recon=args.recon,
                      gen_ssim_weight=args.gen_ssim_weight,
                      gen_perceptual_weight=args.gen_grad_weight, p_lab=args.p_lab)
    sources = [parse_source(t) for t in args.data] if args.data else None

    with ProgressBar("train", "iterations") as bar:
        def show(info):
            bar.show(f"stage {info['stage']} " + " ".join(
                f"{k}={v:.4f}" for k, v in info["losses"].items()))

        res = train(args.out, sources=sources, settings=s, init_weights=args.init,
                    init_flow=args.init_flow, callback=show, progress=bar,
                    max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
                    overwrite=args.overwrite)
    if res.weights:
        print(f"weights written to {res.weights}; validation {res.validation}")
    else:
        print(f"stopped at iteration {res.step}; run the same command again to resume.")
    return 0
