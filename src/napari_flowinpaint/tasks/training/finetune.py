"""Fine-tuning the learned stages on the user's own stack (self-supervised).

Starting from the bundled weights (or any weights file), the guided-inpainting generator and
its discriminator are trained further on triplets of the user's stack damaged with synthetic
masks; sections the user marked as damaged are never used. The last sections of the stack
(``held_out``) are kept aside and the PSNR of the repairs there is measured before and after,
on the very same test repairs: the verdict rests on the paired differences and their 95 %
interval (:mod:`~napari_flowinpaint.tasks.evaluation.paired`). The starting weights' score is
reused when nothing it depends on changed (:func:`~.scoring.starting_scores`). One of the
test repairs, fixed beforehand, comes back whole with both weights' repairs, as the visual
check (:class:`~.scoring.RepairExample`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...engine import load_weights
from ..evaluation.paired import PairedChange, paired_change
from ..io import load_if_small
from .common import (
    Stopped,
    TrainSource,
    held_out_split,
    marked_sections,
    phase_reporter,
    publish_weights,
    weights_output,
)
from .inpainting import TrainSettings, train
from .scoring import RepairExample, repair_example, score_weights, starting_scores

__all__ = ["FinetuneResult", "finetune"]


@dataclass
class FinetuneResult:
    """What :func:`finetune` did.

    Attributes
    ----------
    weights : Path or None
        The fine-tuned weights (``None`` if stopped before the end; run again to resume).
    psnr_before, psnr_after : float or None
        Mean PSNR (dB, over the hole) of the repairs of held-out sections with the starting
        and the fine-tuned weights; ``None`` when stopped before that score was made.
    held_out : tuple of int
        The held-out sections (centres of the scored triplets).
    iterations : int
        Iterations done (0 when stopped while scoring the starting weights).
    stopped : bool
        True when stopped early by ``should_stop``: while scoring the starting weights
        (nothing trained), while training (a checkpoint is kept), or while scoring the
        fine-tuned weights (``weights`` is then set, only ``psnr_after`` is missing).
    run_dir : Path
        Checkpoints, ``losses.csv``, ``losses.png`` and ``start_score.json``.
    change : PairedChange or None
        ``psnr_after - psnr_before`` over the very same test repairs: the mean gain (dB),
        its 95 % interval and the number of test repairs ``n``; ``change.verdict()`` is
        ``"better"``, ``"worse"`` or ``"no clear change"``. None without both scores.
    before_reused : bool
        True when the starting weights' score was reused from an earlier run (same held-out
        sections, starting weights, spacing, samples and seed), not computed again.
    example : RepairExample or None
        One of the scored test repairs (the first at 30 % damage, fixed beforehand), with
        the truth, the damaged crop and the repairs with the starting and the fine-tuned
        weights (``after`` None when not scored): the visual before/after check. None when
        the starting weights were not scored.
    """

    weights: Path | None
    psnr_before: float | None
    psnr_after: float | None
    held_out: tuple[int, ...]
    iterations: int
    stopped: bool
    run_dir: Path
    change: PairedChange | None = None
    before_reused: bool = False
    example: RepairExample | None = None


def _checker(should_stop, report):
    def check(done, total):
        if report is not None:
            report(done, total)
        if should_stop is not None and should_stop():
            raise Stopped
    return check


def _mean(scores: dict) -> float:
    vals = np.array([np.nan if v is None else v for v in scores["psnr_hole"]], np.float64)
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if vals.size else float("nan")


def _change(before: dict, after: dict) -> PairedChange | None:
    try:
        return paired_change(before["psnr_hole"], after["psnr_hole"])
    except ValueError:  # no test repair with two finite scores (all perfect)
        return None


def finetune(stack, out, *, damaged=None, weights=None, iterations: int = 300,
             spacing: int = 1, held_out: float = 0.2, batch: int = 4, crop: int = 128,
             lr: float = 5e-5, seed: int = 0, score_samples: int = 8,
             callback: Callable[[dict], None] | None = None,
             progress: Callable[[int, int], None] | None = None,
             should_stop: Callable[[], bool] | None = None, overwrite: bool = False,
             protect=()) -> FinetuneResult:
    """Fine-tune weights on ``stack`` with synthetic damage, self-supervised.

    Parameters
    ----------
    stack : array_like, shape (Z, Y, X)
        The user's stack (read, never modified): numpy, zarr or dask; a lazy one over 1 GB
        is read a crop at a time, never whole. Needs at least ``2 * spacing + 1`` clean
        sections for training and as many held out.
    out : str or Path
        The fine-tuned weights file (``.safetensors``; a ``.json`` side-car goes beside it).
        Checkpoints go to ``<out>.run/``; calling again with the same ``out`` resumes.
    damaged : array_like of bool, shape (Z, Y, X) or sequence of int, keyword-only
        Damage the user marked (a mask stack; any section with a marked pixel is skipped) or
        the damaged section indices.
    weights : str or Path, keyword-only
        Starting weights (default: the bundled ones).
    iterations : int, keyword-only
        Training iterations (generator + discriminator updates).
    spacing : int, keyword-only
        Neighbour distance: 1 for serial sections, 3-5 for isotropic FIB-SEM stacks.
    held_out : float, keyword-only
        Fraction of the sections, at the end of the stack, kept aside for scoring.
    callback : callable, keyword-only
        ``callback(info)`` as it works: ``info["phase"]`` is ``"before"`` (scoring the
        starting weights), ``"training"`` or ``"after"`` (scoring the fine-tuned weights);
        ``step`` and ``total`` count the scored repairs or the iterations; while training
        it also holds the losses and the wall time. A starting score reused from an
        earlier run is reported once, with ``info["reused"]`` True.
    progress : callable(done, total), keyword-only
        Called after every training iteration.
    should_stop : callable, keyword-only
        Polled after every scored repair and every iteration; True stops cleanly (a
        checkpoint is written when training had started).
    overwrite : bool, keyword-only
        Replace an existing ``out`` (checked before any work; without it an existing file
        is refused). Resuming a stopped run needs no ``overwrite``: ``out`` is written only
        at the end.
    protect : iterable of paths, keyword-only
        Files ``out`` must never be (the stack's and the mask's files).

    Returns
    -------
    FinetuneResult
    """
    stack = load_if_small(stack)  # a big lazy stack is read a crop at a time
    spacing, iterations, split = held_out_split(stack.shape, spacing, iterations, held_out,
                                                doing="fine-tune")
    nz = stack.shape[0]
    skip = tuple(marked_sections(damaged, stack.shape)[0])
    marked = set(skip)
    if not any(marked.isdisjoint((z - spacing, z, z + spacing))
               for z in range(spacing, split - spacing)):
        raise ValueError(
            f"no triplet of sections is left to train on: sections 0-{split - 1} are the "
            f"training part (the rest is held out) and {len(marked & set(range(split)))} of "
            "them are marked damaged. Mark fewer sections or fine-tune on a longer stack.")
    if min(stack.shape[1:]) < crop:
        crop = int(min(stack.shape[1:])) // 32 * 32
        if crop < 32:
            raise ValueError(f"sections of {stack.shape[1:]} are too small to fine-tune on.")
    out, run_dir = weights_output(out, overwrite=overwrite, protect=protect,
                                  what="fine-tuned weights file")
    hold_range = (split, nz)
    score_seed = seed + 1
    held = tuple(range(split, nz))
    try:
        scores, reused = starting_scores(stack, weights, hold_range, spacing, score_samples,
                                         score_seed, run_dir, _checker(
                                             should_stop, phase_reporter(callback, "before")))
    except Stopped:  # stopped while scoring the starting weights: nothing trained yet
        return FinetuneResult(None, None, None, held, 0, True, run_dir)
    before = _mean(scores)
    if reused:
        n = len(scores["psnr_hole"])
        if callback is not None:
            callback({"phase": "before", "step": n, "total": n, "reused": True})
        if should_stop is not None and should_stop():  # as if stopped while scoring
            return FinetuneResult(None, None, None, held, 0, True, run_dir, None, True)
    src = TrainSource("<user stack>", (0, split), (spacing,), 1.0, skip)
    # keep the loss weights the starting weights were trained with (a stronger adversarial
    # term than theirs degrades the repairs within a few hundred iterations)
    base = load_weights(weights).meta.get("training", {}).get("settings", {})
    keep = {k: base[k] for k in ("adv_weight", "hole_weight", "gen_perceptual_weight",
                                 "gen_ssim_weight") if base.get(k) is not None}
    settings = TrainSettings(flow_iters=0, gan_iters=iterations, batch=batch, crop=crop,
                             lr_gen=lr, lr_disc=lr, gan_warmup=0, seed=seed, **keep,
                             checkpoint_every=max(10, iterations // 5), log_every=5,
                             val_samples=8)
    res = train(run_dir, stacks=[(stack, src)], settings=settings,
                init_weights=weights or "bundled",
                callback=None if callback is None else (
                    lambda info: callback({**info, "phase": "training"})), progress=progress,
                should_stop=should_stop, meta={"finetuned_from": str(weights or "bundled")})
    if res.stopped:
        return FinetuneResult(None, before, None, held, res.step, True, run_dir,
                              before_reused=reused, example=repair_example(scores))
    publish_weights(res.weights, out, overwrite=overwrite, protect=protect,
                    what="fine-tuned weights file")
    try:
        tuned = score_weights(stack, out, hold_range, spacing, score_samples, score_seed,
                              _checker(should_stop, phase_reporter(callback, "after")))
    except Stopped:  # training is complete and the weights are written; only the score is
        return FinetuneResult(out, before, None, held, res.step, True, run_dir,
                              before_reused=reused, example=repair_example(scores))
    return FinetuneResult(out, before, _mean(tuned), held, res.step, res.stopped, run_dir,
                          _change(scores, tuned), reused, repair_example(scores, tuned))
