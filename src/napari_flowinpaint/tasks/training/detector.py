"""Train the damage detector on simulated damage of real stacks (no napari needed).

Samples come from :class:`~napari_flowinpaint.tasks.training.samplers.DetectorSampler`
(isbi2012_train and fibsem_medulla_ts1 z < 200 by default, never the validation sets).
The loss is binary cross-entropy plus soft Dice.

A run lives in one folder: ``checkpoint.pt`` (exact resume), ``losses.csv`` and
``detector.safetensors`` + ``.json`` (written at every checkpoint). Running the same
command again resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ...engine.nets.detector import DamageDetectorNet
from ...engine.weights import load_detector, save_detector
from ..detection.evidence import LEVELLED
from ..simulation import DAMAGE_KINDS
from .common import (
    LossLog,
    default_sources,
    load_checkpoint,
    load_sources,
    prepare_run_folder,
    save_checkpoint,
)
from .samplers import DetectorSampler

__all__ = ["train_detector", "detector_loss"]


def detector_loss(logits: torch.Tensor, target: torch.Tensor,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice over the batch.

    ``logits``, ``target`` and ``weight`` are (B, 1, H, W); ``weight`` (default all 1)
    scales each pixel's share of both terms (0 leaves a pixel out).
    """
    if weight is None:
        weight = torch.ones_like(target)
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight
           ).sum() / weight.sum().clamp_min(1.0)
    p = torch.sigmoid(logits) * weight
    t = target * weight
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    return bce + dice


def _source_name(src) -> str:
    """``folder z a:b`` of a training source, for the weights' card."""
    parts = str(src.path).replace("\\", "/").split("/")
    name = parts[-2] if len(parts) > 1 else parts[-1]
    return name + (f" z {src.z_range[0]}:{src.z_range[1]}" if src.z_range != (0, 1 << 30)
                   else "")


def train_detector(out_dir, *, sources=None, iterations: int = 3000, batch: int = 8,
                   crop: int = 192, width: int = 12, lr: float = 1e-3, seed: int = 0,
                   checkpoint_every: int = 250, init=None, p_clean: float = 0.25,
                   p_one_sided: float = 0.1, p_damaged_neighbour: float = 0.0,
                   p_continuing: float = 0.0, continuing_lines: float = 0.0,
                   p_lab: float = 0.0, kind_weights: dict | None = None, stacks=None, marks=None,
                   window: int | None = None, meta: dict | None = None,
                   callback: Callable[[dict], None] | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   overwrite: bool = False) -> Path:
    """Train (or resume) a damage detector; returns the path of its weights file.

    ``init`` (a weights file, or ``"bundled"``) starts from trained weights instead of a
    random initialisation (fine-tuning; ``width`` is then the file's). ``p_clean`` is the
    share of undamaged samples (what teaches the network to stay quiet on real sections);
    ``p_one_sided`` the share of samples with a neighbour on one side only (stack ends);
    ``p_damaged_neighbour`` the share whose neighbour is damaged (its damage is not the
    section's: the target stays the section's own); ``p_continuing`` the share in which a
    dark body is drawn in the section and a neighbour alike
    (:func:`~napari_flowinpaint.tasks.simulation.continuing_structure`: tissue, not damage),
    ``continuing_lines`` the share of those that are thin dark lines instead of blobs;
    ``p_lab`` the probability of each variation between labs (pixel size, gamma, noise, blur,
    flicker; see :class:`~napari_flowinpaint.tasks.training.samplers.DetectorSampler`);
    ``kind_weights`` (e.g. ``{"crack": 2}``) draws some damage kinds more often.
    ``stacks`` (``[(array, TrainSource), ...]``, arrays may be lazy) replaces ``sources``
    with stacks already opened; ``marks`` and ``window`` are the
    :class:`~napari_flowinpaint.tasks.training.samplers.DetectorSampler`'s (painted damage
    left out of the loss; a random window of each section read); ``meta`` is added to the
    weights' ``training`` record.
    ``callback(info)`` gets the step, total, loss and seconds after every iteration, and
    ``progress(done, total)`` is called then too; ``should_stop()`` is polled after every
    iteration (True writes a checkpoint and stops). ``out_dir`` is a run folder: a new or
    empty one, or one with a ``checkpoint.pt`` to resume (others are refused unless
    ``overwrite``).
    """
    if stacks is None:
        sources = sources or default_sources()
        stacks = load_sources(sources)  # first: a missing stack leaves no run folder behind
    else:
        sources = [src for _, src in stacks]
    out = prepare_run_folder(out_dir, overwrite=overwrite)
    torch.manual_seed(seed)
    if init is not None:
        net = load_detector(None if init == "bundled" else init)
        width = net.width
    else:
        net = DamageDetectorNet(width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=iterations,
                                                pct_start=min(0.75, max(0.05, 2.5 / iterations)))
    sampler = DetectorSampler(stacks, crop=crop, rng=seed, p_clean=p_clean,
                              p_one_sided=p_one_sided, kind_weights=kind_weights,
                              p_damaged_neighbour=p_damaged_neighbour,
                              p_continuing=p_continuing, continuing_lines=continuing_lines,
                              p_lab=p_lab, window=window,
                              marks=marks)
    ckpt = out / "checkpoint.pt"
    parts = {"net": net, "opt": opt, "sched": sched}
    resumed = load_checkpoint(ckpt, parts, sampler.rng)
    step, seconds = (resumed["step"], resumed["seconds"]) if resumed else (0, 0.0)
    sched.total_steps = iterations  # a resumed run may be asked for more steps
    log = LossLog(out / "losses.csv", ["step", "loss", "seconds"], resume_step=step)
    weights = out / "detector.safetensors"

    def save():
        save_checkpoint(ckpt, parts, sampler.rng, step=step, seconds=seconds)
        save_detector(weights, net, meta={"input": LEVELLED, "training": {
            "data": [_source_name(s) for s in sources],
            "iterations": step, "batch": batch, "crop_half_res": crop, "lr": lr, "seed": seed,
            "wall_time_s": round(seconds), "kinds": list(DAMAGE_KINDS),
            "init": str(init) if init else None, "p_clean": p_clean,
            "p_one_sided": p_one_sided, "p_damaged_neighbour": p_damaged_neighbour,
            "p_continuing": p_continuing, "continuing_lines": continuing_lines,
            "p_lab": p_lab,
            "kind_weights": dict(kind_weights or {}),
            "command": "napari-flowinpaint train-detector", "window": window,
            **(meta or {})}})

    net.train()
    while step < iterations:
        t0 = time.perf_counter()
        x, t, w = sampler.batch(batch)
        loss = detector_loss(net(x), t, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        seconds += time.perf_counter() - t0
        log.append([step, f"{loss.item():.5f}", f"{seconds:.1f}"])
        if callback is not None:
            callback({"step": step, "total": iterations, "loss": loss.item(),
                      "seconds": seconds})
        if progress is not None:
            progress(step, iterations)
        if step % checkpoint_every == 0 or step == iterations:
            save()
        if should_stop is not None and should_stop():
            save()
            break
    net.eval()
    return weights
