"""Training of the learned stages (paper sections 3.2-3.4, 4.1-4.2), usable without napari.

Stage 1 trains the refined-reference network (Eq. 13-14), stage 2 the guided-inpainting
generator against the hybrid discriminator (Eq. 18-21), with the refined-reference network
frozen. Samples are aligned random crops of (previous, truth, next) triplets from vEM stacks,
damaged by the evaluation harness's mask generator, and prepared by the very function the
inference engine uses (:func:`~napari_flowinpaint.engine.pipeline.prepare_inputs`).

A run lives in one folder: ``checkpoint.pt`` (exact resume: networks, optimisers, step and
every random state), ``losses.csv``, ``losses.png``, ``validation.csv`` and, at the end,
``weights.safetensors`` + ``weights.json``. Running the same command again resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ...engine.nets import (
    HybridDiscriminator,
    NetsConfig,
    build_networks,
    discriminator_hinge_loss,
    generator_hinge_loss,
    gradient_pyramid_loss,
    masked_l1,
    masked_l2,
    pyramid_loss,
    ssim_loss,
)
from ...engine.pipeline import learned_stages
from ...engine.weights import load_weights, save_weights
from .common import (
    LossLog,
    TrainSource,
    cosine_lr,
    default_sources,
    load_checkpoint,
    load_sources,
    plot_losses,
    prepare_run_folder,
    psnr_masked,
    save_checkpoint,
)
from .samplers import TripletSampler
from .settings import TrainSettings

__all__ = ["TrainSettings", "TrainResult", "InpaintingModels",
           "build_models", "flow_step", "gan_step", "train"]


@dataclass
class TrainResult:
    """What :func:`train` left behind: ``weights`` is the final file, or the latest export
    (written at every stage-2 checkpoint) when ``stopped``, or None before stage 2."""

    out_dir: Path
    weights: Path | None
    step: int
    stopped: bool
    validation: dict


@dataclass
class InpaintingModels:
    """The networks of a training run and their optimisers (see :func:`build_models`)."""

    config: NetsConfig
    flow_net: torch.nn.Module
    generator: torch.nn.Module
    discriminator: torch.nn.Module
    opt_flow: torch.optim.Optimizer
    opt_gen: torch.optim.Optimizer
    opt_disc: torch.optim.Optimizer

    def parts(self) -> dict:
        """Everything a checkpoint holds, under its checkpoint key."""
        return {"flow": self.flow_net, "generator": self.generator,
                "discriminator": self.discriminator, "opt_flow": self.opt_flow,
                "opt_gen": self.opt_gen, "opt_disc": self.opt_disc}


def build_models(settings: TrainSettings, *, init_weights=None,
                 init_flow=None) -> InpaintingModels:
    """The networks (random, or from weights) in training mode, with their Adam optimisers.

    ``init_weights`` (a file or ``"bundled"``) starts every network from trained weights;
    ``init_flow`` takes only the refined-reference network from a file. Random
    initialisation draws from torch's global generator: seed it first.
    """
    s = settings
    cfg = s.nets_config()
    if init_weights is not None:
        lw = load_weights(None if init_weights == "bundled" else init_weights)
        flow_net, gen = lw.flow_net, lw.generator
        disc = lw.discriminator
        if disc is None:
            disc = HybridDiscriminator(lw.config.discriminator)
        if s.residual and not gen.config.residual:
            gen.make_residual()  # keeps the learned layers, starts from the reference
        cfg = replace(lw.config, loss=cfg.loss, generator=gen.config)
    else:
        flow_net, gen, disc = build_networks(cfg)
    if init_flow is not None:  # a trained refined-reference network, fresh generator
        flow_net = load_weights(init_flow).flow_net
    for net in (flow_net, gen, disc):
        net.train()
        net.to(memory_format=torch.channels_last)
    return InpaintingModels(
        cfg, flow_net, gen, disc,
        torch.optim.Adam(flow_net.parameters(), lr=s.lr_flow, betas=s.betas),
        torch.optim.Adam(gen.parameters(), lr=s.lr_gen, betas=s.betas),
        torch.optim.Adam(disc.parameters(), lr=s.lr_disc, betas=s.betas))


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def flow_step(models: InpaintingModels, batch: dict, settings: TrainSettings,
              step: int) -> tuple[dict, float]:
    """One stage-1 iteration (refined reference, Eq. 13-14); returns the losses to log and
    the learning rate used."""
    s, lc, b = settings, models.config.loss, batch
    lr = cosine_lr(s.lr_flow, step, s.flow_iters)
    _set_lr(models.opt_flow, lr)
    fo = models.flow_net(b["reference"], b["damaged"], b["mask"])
    loss = pyramid_loss(fo.flows, b["reference"], b["truth"], b["mask"],
                        weights=lc.level_weights, hole_weight=lc.flow_hole_weight,
                        ssim_weight=lc.ssim_weight, perceptual_weight=lc.perceptual_weight)
    models.opt_flow.zero_grad(set_to_none=True)
    loss.backward()
    models.opt_flow.step()
    return {"flow_total": loss.item()}, lr


def gan_step(models: InpaintingModels, batch: dict, settings: TrainSettings,
             k: int) -> tuple[dict, float]:
    """Stage-2 iteration ``k`` (guided inpainting against the discriminator, Eq. 18-21, the
    refined-reference network frozen); returns the losses to log and the learning rate."""
    s, lc, b = settings, models.config.loss, batch
    flow_net, gen, disc = models.flow_net, models.generator, models.discriminator
    lr = cosine_lr(s.lr_gen, k, s.gan_iters)
    _set_lr(models.opt_gen, lr)
    _set_lr(models.opt_disc, cosine_lr(s.lr_disc, k, s.gan_iters))
    with torch.no_grad():
        flow_net.eval()
        refined, _, _ = learned_stages(flow_net, None, b["reference"], b["prev"], b["next"],
                                       b["damaged"], b["mask"], use_refined=s.use_refined)
        flow_net.train()
    out = gen(refined, b["prev"], b["next"], b["damaged"], b["mask"])
    x, m = b["truth"], b["mask"]
    row = {}
    use_adv = s.use_gan and lc.adv_weight > 0 and k >= s.gan_warmup
    if use_adv:
        d_loss = discriminator_hinge_loss(disc(x, m), disc(out.inpainted.detach(), m))
        models.opt_disc.zero_grad(set_to_none=True)
        d_loss.backward()
        models.opt_disc.step()
        row["d_loss"] = d_loss.item()
    reconstruction = masked_l2 if lc.recon == "l2" else masked_l1  # Eq. 18's first term
    g_total = reconstruction(out.raw, x, m, hole_weight=lc.hole_weight)
    row["g_l1"] = g_total.item()  # the column keeps its name for either distance
    if lc.gen_ssim_weight:
        t = ssim_loss(out.inpainted, x)
        g_total = g_total + lc.gen_ssim_weight * t
        row["g_ssim"] = t.item()
    if lc.gen_perceptual_weight:
        t = gradient_pyramid_loss(out.inpainted, x)
        g_total = g_total + lc.gen_perceptual_weight * t
        row["g_grad"] = t.item()
    if use_adv:
        t = generator_hinge_loss(disc(out.inpainted, m))
        ramp = 1.0 if s.adv_ramp <= 0 else min(1.0, (k - s.gan_warmup + 1) / s.adv_ramp)
        g_total = g_total + ramp * lc.adv_weight * t
        row["g_adv"] = t.item()
    models.opt_gen.zero_grad(set_to_none=True)
    g_total.backward()
    models.opt_gen.step()
    row["g_total"] = g_total.item()
    return row, lr


def _validate(models: InpaintingModels, val: dict, use_refined: bool) -> dict:
    """PSNR in the hole of the initial reference, the refined one and the output."""
    models.flow_net.eval()
    models.generator.eval()
    with torch.no_grad():
        refined, out, _ = learned_stages(models.flow_net, models.generator, val["reference"],
                                         val["prev"], val["next"], val["damaged"],
                                         val["mask"], use_refined=use_refined)
    models.flow_net.train()
    models.generator.train()
    m, truth = val["mask"], val["truth"]
    return {"psnr_hole_initial": psnr_masked(val["reference"].clamp(0, 1), truth, m),
            "psnr_hole_refined": psnr_masked(refined.clamp(0, 1), truth, m),
            "psnr_hole_output": psnr_masked(out.inpainted, truth, m)}


def _export(out_dir: Path, models: InpaintingModels, s: TrainSettings, stacks, *, step: int,
            wall: float, init_weights, init_flow, validation: dict, meta) -> Path:
    info = {
        "training": {
            "data": [{"path": Path(src.path).parent.name + "/" + Path(src.path).name,
                      "z_range": list(src.z_range), "spacings": list(src.spacings)}
                     for _, src in stacks],
            "iterations": {"refined_reference": min(step, s.flow_iters)
                           if s.use_refined else 0,
                           "guided_inpainting": max(0, step - s.flow_iters)},
            "planned_iterations": s.flow_iters + s.gan_iters,
            "batch": s.batch, "crop": s.crop, "seed": s.seed,
            "wall_time_seconds": round(wall, 1),
            "settings": {k: v for k, v in vars(s).items() if k != "extra"},
            "init_weights": str(init_weights) if init_weights else None,
            "init_flow": str(init_flow) if init_flow else None,
            "validation_on_training_crops": validation,
        },
        **(meta or {}),
    }
    return save_weights(out_dir / "weights", models.config, models.flow_net,
                        models.generator, models.discriminator, meta=info)


_LOSS_FIELDS = ["step", "stage", "lr", "seconds", "flow_total", "g_l1", "g_ssim", "g_grad",
                "g_adv", "g_total", "d_loss"]
_VAL_FIELDS = ["step", "psnr_hole_initial", "psnr_hole_refined", "psnr_hole_output"]


def train(out_dir, *, sources: Sequence[TrainSource] | None = None,
          settings: TrainSettings | None = None, init_weights=None, init_flow=None,
          stacks=None, callback: Callable[[dict], None] | None = None,
          progress: Callable[[int, int], None] | None = None,
          should_stop: Callable[[], bool] | None = None, max_seconds: float | None = None,
          meta: dict | None = None, overwrite: bool = False) -> TrainResult:
    """Train (or resume training) the refined-reference and guided-inpainting networks.

    Parameters
    ----------
    out_dir : str or Path
        Run folder; an existing ``checkpoint.pt`` there is resumed exactly. A folder that
        holds other files and no checkpoint is refused unless ``overwrite``
        (:func:`~napari_flowinpaint.tasks.training.common.prepare_run_folder`).
    sources : sequence of TrainSource, keyword-only
        Default: :func:`~napari_flowinpaint.tasks.training.default_sources`
        (isbi2012_train and fibsem_medulla_ts1 z < 200).
    settings : TrainSettings, keyword-only
    init_weights : str or Path or "bundled", keyword-only
        Start from these weights instead of random initialisation (fine-tuning).
    init_flow : str or Path, keyword-only
        Take only the refined-reference network from these weights (with ``flow_iters=0``,
        stage 2 starts at once: how the ablations share the main run's stage 1).
    stacks : sequence of (array, TrainSource), keyword-only
        Already-loaded stacks (overrides ``sources``).
    callback : callable, keyword-only
        Called every ``log_every`` iterations with a dict (step, total, stage, losses,
        seconds, validation): the loss log as it grows.
    progress : callable(done, total), keyword-only
        Called after every iteration.
    should_stop : callable, keyword-only
        Polled every iteration; when it returns True a checkpoint is written and training
        stops (it resumes later from there).
    max_seconds : float, keyword-only
        Stop (with a checkpoint) after this much wall time in this call.

    Returns
    -------
    TrainResult
    """
    s = settings or TrainSettings()
    if stacks is None:  # first: a missing stack leaves no run folder behind
        stacks = load_sources(sources if sources is not None else default_sources())
    out_dir = prepare_run_folder(out_dir, overwrite=overwrite)
    torch.manual_seed(s.seed)
    models = build_models(s, init_weights=init_weights, init_flow=init_flow)
    total = s.flow_iters + s.gan_iters
    sampler = TripletSampler(stacks, crop=s.crop, rng=np.random.default_rng(s.seed),
                             p_lab=s.p_lab)
    val_sampler = TripletSampler(stacks, crop=s.crop, rng=np.random.default_rng(s.seed + 10_000))
    val = val_sampler.batch(s.val_samples)
    ckpt_path = out_dir / "checkpoint.pt"
    resumed = load_checkpoint(ckpt_path, models.parts(), sampler.rng)
    step = int(resumed["step"]) if resumed else 0
    wall = float(resumed["wall"]) if resumed else 0.0
    losses = LossLog(out_dir / "losses.csv", _LOSS_FIELDS, resume_step=step)
    val_log = LossLog(out_dir / "validation.csv", _VAL_FIELDS, resume_step=step)
    t_start = time.perf_counter()

    def elapsed() -> float:
        return wall + time.perf_counter() - t_start

    def checkpoint() -> None:
        save_checkpoint(ckpt_path, models.parts(), sampler.rng, step=step, wall=elapsed())
        plot_losses(losses.path, out_dir / "losses.png")

    def export() -> Path:
        return _export(out_dir, models, s, stacks, step=step, wall=elapsed(),
                       init_weights=init_weights, init_flow=init_flow,
                       validation=last_val, meta=meta)

    def validate() -> dict:
        res = {"step": step, **_validate(models, val, s.use_refined)}
        val_log.append([res[k] for k in _VAL_FIELDS])
        return res

    stopped = False
    acc: dict[str, list[float]] = {}
    last_val: dict = {}
    weights = None
    while step < total:
        stage = 1 if step < s.flow_iters else 2
        if stage == 1 and not s.use_refined:
            step = s.flow_iters
            continue
        b = sampler.batch(s.batch)
        b = {k: v.contiguous(memory_format=torch.channels_last) for k, v in b.items()}
        if stage == 1:
            row, lr = flow_step(models, b, s, step)
        else:
            row, lr = gan_step(models, b, s, step - s.flow_iters)
        step += 1
        for key, v in row.items():
            acc.setdefault(key, []).append(v)
        if step % s.log_every == 0 or step == total:
            means = {key: float(np.mean(v)) for key, v in acc.items()}
            acc = {}
            losses.append([step, stage, f"{lr:.3g}", f"{elapsed():.1f}"]
                          + [f"{means[f]:.5f}" if f in means else "" for f in _LOSS_FIELDS[4:]])
            if callback is not None:
                callback({"step": step, "total": total, "stage": stage, "losses": means,
                          "seconds": elapsed(), "validation": last_val})
        if progress is not None:
            progress(step, total)
        done = step == total
        if step % s.checkpoint_every == 0 or done:
            if stage == 2 or done:
                last_val = validate()
            checkpoint()
            if stage == 2 and not done:
                weights = export()  # usable weights at every stage-2 checkpoint
        over_time = max_seconds is not None and time.perf_counter() - t_start > max_seconds
        if not done and ((should_stop is not None and should_stop()) or over_time):
            checkpoint()
            if stage == 2:
                weights = export()
            stopped = True
            break
    if step >= total:
        if not last_val:
            last_val = validate()
        weights = export()
    return TrainResult(out_dir, weights, step, stopped, last_val)
