"""Adapting the damage detector to the user's own stack (self-supervised).

A detector trained on other labs' EM may take this stack's normal tissue (pale profiles,
its contrast, its noise) for damage. Starting from the bundled detector (or any detector
weights), training goes on with this stack only: its sections as they are (clean samples,
which teach the network what is normal here) and with simulated damage of every kind. The
damage the user painted is left out of the loss, and sections painted over most of their
area are not used at all. The last sections of the stack (``held_out``) are kept aside and
scored before and after: the share of their real sections flagged (false alarms, when they
are undamaged) and the pixel F1 of simulated damage on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...engine.weights import load_detector
from ..evaluation.detection import evaluate_detection
from .common import (
    Stopped,
    TrainSource,
    held_out_split,
    marked_sections,
    phase_reporter,
    publish_weights,
    weights_output,
)
from .detector import train_detector

__all__ = ["DetectorFinetuneResult", "finetune_detector"]

@dataclass
class DetectorFinetuneResult:
    """What :func:`finetune_detector` did.

    Attributes
    ----------
    weights : Path or None
        The adapted detector weights (``None`` if stopped before the end; run again to
        resume).
    before, after : dict or None
        Scores on the held-out sections with the starting and the adapted weights:
        ``false_alarms`` (share of the real, unpainted sections flagged: a region of at
        least 100 px), ``false_pixels`` (their mean share of pixels marked), ``f1`` (pixel
        F1 of simulated damage, mean over the damage kinds), ``f1_kinds`` (per kind),
        ``sections`` (real sections judged). ``None`` when stopped before that score.
    held_out : tuple of int
        The held-out sections scored.
    iterations : int
        Training iterations done.
    stopped : bool
        True when stopped early by ``should_stop``.
    run_dir : Path
        The training run (checkpoint, ``losses.csv``); the same call resumes it.
    """

    weights: Path | None
    before: dict | None
    after: dict | None
    held_out: tuple[int, ...]
    iterations: int
    stopped: bool
    run_dir: Path


def _score(part, first, known, weights, spacing, samples, seed, report, should_stop):
    def check(done, total):
        if report is not None:
            report(done, total)
        if should_stop is not None and should_stop():
            raise Stopped

    rep = evaluate_detection(part, spacing=spacing, samples=samples, seed=seed,
                             weights=weights, continuing=False, progress=check,
                             known_damaged=[z - first for z in known])
    kinds = {k: round(v["f1"], 4) for k, v in rep["kinds"].items()}
    return {"false_alarms": rep["clean"]["flagged"],
            "false_pixels": rep["clean"]["false_pixel_fraction"],
            "f1": float(np.mean(list(kinds.values()))), "f1_kinds": kinds,
            "sections": rep["clean"]["slices"]}


def finetune_detector(stack, out, *, damaged=None, weights=None, iterations: int = 200,
                      spacing: int = 1, held_out: float = 0.2, score_sections: int = 12,
                      score_samples: int = 3, batch: int = 8, crop: int = 128,
                      lr: float = 2e-4, p_clean: float = 0.5, p_lab: float = 0.3,
                      seed: int = 0, callback: Callable[[dict], None] | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      should_stop: Callable[[], bool] | None = None,
                      overwrite: bool = False, protect=()) -> DetectorFinetuneResult:
    """Adapt detector weights to ``stack``, self-supervised (see the module description).

    Parameters
    ----------
    stack : array_like, shape (Z, Y, X)
        The user's stack (numpy, zarr or dask: only windows of a few sections are read at a
        time, and the scored sections). Never modified.
    out : str or Path
        The adapted weights (``.safetensors``, with a ``.json`` card beside it). The run's
        checkpoints go to ``<out>.run/``; calling again with the same ``out`` resumes.
    damaged : array_like, shape (Z, Y, X), or sequence of int, keyword-only
        Damage the user painted (nonzero = damaged; left out of the loss, and sections
        painted over more than half their area are not used) or damaged section indices
        (not used).
    weights : str or Path, keyword-only
        Starting detector weights (default: the bundled ones).
    iterations : int, keyword-only
        Training iterations (``batch`` samples each).
    spacing : int, keyword-only
        Neighbour distance: 1 for serial sections, 3-5 for isotropic FIB-SEM stacks.
    held_out : float, keyword-only
        Fraction of the sections, at the end of the stack, kept out of the training.
    score_sections : int, keyword-only
        At most this many of the held-out sections are scored (the first ones).
    score_samples : int, keyword-only
        Simulated damage samples per kind in the scoring.
    batch, crop, lr, p_clean, p_lab, seed : keyword-only
        As :func:`~napari_flowinpaint.tasks.training.train_detector` (``crop`` at half
        resolution; windows of ``2 * crop + 128`` pixels are read).
    callback : callable, keyword-only
        ``callback(info)`` as it works: ``info["phase"]`` is ``"before"``, ``"training"`` or
        ``"after"``; ``step`` and ``total`` count the scored sections or the iterations;
        while training it also holds ``loss`` and ``seconds``.
    progress : callable(done, total), keyword-only
        Called after every training iteration.
    should_stop : callable, keyword-only
        Polled after every scored section and iteration; True stops cleanly (a checkpoint
        is written when training had started).
    overwrite : bool, keyword-only
        Replace an existing ``out`` (without it an existing file is refused before any
        work).
    protect : iterable of paths, keyword-only
        Files ``out`` must never be (the stack's and the mask's files).

    Returns
    -------
    DetectorFinetuneResult
    """
    shape = tuple(np.shape(stack))
    spacing, iterations, split = held_out_split(shape, spacing, iterations, held_out,
                                                doing="adapt the detector")
    nz = shape[0]
    if min(shape[1:]) < 64:
        raise ValueError(f"sections of {shape[1:]} are too small to adapt the detector on "
                         "(64 x 64 pixels at least).")
    crop = int(min(crop, min(shape[1:]) // 2))
    painted, unusable = marked_sections(damaged, shape)
    if not [z for z in range(spacing, split - spacing) if z not in unusable]:
        raise ValueError(
            f"no section is left to train on: sections 0-{split - 1} are the training part "
            f"(the rest is held out) and all are marked damaged. Mark less or use a longer "
            "stack.")
    last = min(nz, split + max(int(score_sections), 2 * spacing + 1))
    known = [z for z in painted if split <= z < last]
    if len(known) >= last - split:
        raise ValueError(f"every scored section ({split}-{last - 1}) is marked damaged; "
                         "none is left to count false alarms on. Use a smaller held_out.")
    out, run_dir = weights_output(out, overwrite=overwrite, protect=protect,
                                  what="adapted detector weights file")
    held = tuple(range(split, last))
    part = np.asarray(stack[split:last])

    def score(w, name):
        return _score(part, split, known, w, spacing, score_samples, seed + 1,
                      phase_reporter(callback, name), should_stop)

    try:
        before = score(weights, "before")
    except Stopped:
        return DetectorFinetuneResult(None, None, None, held, 0, True, run_dir)
    src = TrainSource("<user stack>/stack", (0, split), (spacing,), 1.0, tuple(unusable))
    stopped = []

    def stop():
        if should_stop is not None and should_stop():
            stopped.append(True)
            return True
        return False

    marks = None if damaged is None or len(np.shape(damaged)) != 3 else [damaged]
    path = train_detector(
        run_dir, stacks=[(stack, src)], marks=marks, window=2 * crop + 128,
        iterations=iterations, batch=batch, crop=crop, lr=lr, seed=seed,
        checkpoint_every=max(10, iterations // 5), init=weights or "bundled",
        p_clean=p_clean, p_one_sided=0.15, p_damaged_neighbour=0.3, p_continuing=0.2,
        p_lab=p_lab, kind_weights={"crack": 2, "fold": 2},
        callback=None if callback is None else (
            lambda info: callback({**info, "phase": "training"})),
        progress=progress, should_stop=stop,
        meta={"finetuned_from": str(weights or "bundled"),
              "adapted_to": f"the user's stack, sections 0-{split - 1} of {nz}",
              "command": "napari-flowinpaint finetune-detector"})
    step = int(load_detector(path).meta["training"]["iterations"])
    if stopped and step < iterations:
        return DetectorFinetuneResult(None, before, None, held, step, True, run_dir)
    publish_weights(path, out, overwrite=overwrite, protect=protect,
                    what="adapted detector weights file")
    try:
        after = score(out, "after")
    except Stopped:
        return DetectorFinetuneResult(out, before, None, held, step, True, run_dir)
    return DetectorFinetuneResult(out, before, after, held, step, False, run_dir)
