"""What the detector decides a section's mask from: the network's damage probability (the
bundled or given weights, loaded once) and the bright-blank cue, with the neighbours
prepared as the weights want them (matched, hole-filled, levelled)."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import torch

from ...engine.weights import load_detector
from .cues import (
    blank_pixels,
    bright_blank,
    brightest_tissue,
    detector_input,
    without_holes,
)
from .levels import level_section, match_neighbour, measure_level, scale_and_level
from .thinfolds import thin_folds as find_thin_folds

__all__ = ["damage_probability", "section_evidence", "stack_reference", "LEVELLED"]

_NETS: dict = {}
_LOADING = threading.Lock()
#: One network run at a time: sections judged at once (:mod:`.threads`) take turns with it,
#: so that its own threads (torch's) do not compete for the cores with another run's.
_RUNNING = threading.Lock()
#: The ``input`` of detector weights trained on levelled sections (``train-detector`` writes
#: it): each section is brought to the stack's level before it is judged. Older weights
#: (before round 7 of the bundled detector) saw the stack's grey levels as they are.
LEVELLED = "levelled"


def weights_key(weights) -> tuple | None:
    """What identifies detector ``weights``: a file written again (a new fine-tuning) is
    another key."""
    if weights is None:
        return None
    path = Path(weights)
    return (str(path), path.stat().st_mtime_ns if path.is_file() else None)


def _detector(weights=None):
    key = weights_key(weights)
    with _LOADING:
        if key not in _NETS:
            net = load_detector(weights)
            _NETS[key] = net.to(memory_format=torch.channels_last)
        return _NETS[key]


def _takes_levelled(weights=None) -> bool:
    """Whether the detector ``weights`` were trained on levelled input (:data:`LEVELLED`)."""
    return _detector(weights).meta.get("input") == LEVELLED


def stack_reference(stack, weights=None) -> tuple[tuple[float, float], tuple[float, float]]:
    """The stack's grey scale and typical level (:func:`~.cues.stack_scale`,
    :func:`~.cues.stack_level`) as the detector ``weights`` want them: computed once per
    stack, and given to :func:`~.detector.iter_detect_damage` when a stack is judged in parts."""
    return scale_and_level(stack, levelled=_takes_levelled(weights))


def damage_probability(prev, section, next, *, scale, weights=None,
                       cache: dict | None = None) -> np.ndarray:
    """Per-pixel damage probability of ``section`` (H, W) float32, from the detector network.

    ``prev`` and ``next`` may be None (no neighbour on that side); ``scale`` maps grey levels
    to [0, 1] (see :func:`~.cues.stack_scale`); ``cache`` as in :func:`~.cues.detector_input`.
    """
    net = _detector(weights)
    x = torch.from_numpy(detector_input(prev, section, next, scale, cache=cache))[None]
    with _RUNNING, torch.inference_mode():
        p = torch.sigmoid(net(x.to(memory_format=torch.channels_last)))[0, 0].numpy()
    h, w = np.shape(section)
    if p.shape != (h, w):
        p = cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)
    return p


def section_evidence(prev, section, next, *, scale: tuple[float, float],
                     level: tuple[float, float], weights=None, cache: dict | None = None,
                     thin_folds: bool = False) -> tuple:
    """What the detector decides a section's mask from: the network's damage probability,
    the bright-blank cue, whether the section has no neighbour at all, and its blank pixels.

    The neighbours (``prev``, ``next``; None where there is none) are prepared as
    :func:`~.detector.iter_detect_damage` describes: with levelled weights, matched to the section
    (:func:`~.cues.match_neighbour`); their own holes filled (:func:`~.cues.without_holes`);
    with levelled weights, all three brought to the stack's ``level``. ``scale`` and
    ``level`` as from :func:`stack_reference`; ``cache`` as in :func:`damage_probability`.
    :func:`~.postprocess.decide_mask` turns the result into a mask. ``thin_folds``: also
    look for thin folds at full resolution (:func:`~.thinfolds.thin_folds`, on the three
    sections as prepared here) and return them fifth.

    Returns
    -------
    p : ndarray of float32, shape (H, W)
    bright : ndarray of bool, shape (H, W)
    alone : bool
    blank : ndarray of bool, shape (H, W), or None
        :func:`~.cues.blank_pixels` of the section (levelled as judged), None when the
        bright-blank cue found nothing (then nothing asks for it).
    folds : ndarray of bool, shape (H, W)
        Only with ``thin_folds``: the thin folds found (for ``decide_mask(folds=...)``).
    """
    sec = section
    # flicker is not damage (weights trained on levelled input): the neighbours in the
    # section's grey levels first, so that a neighbour imaged brighter does not look like a
    # hole to without_holes; then all three at the stack's level, measured on the
    # neighbours (damage in the section moves nothing)
    levelled = _takes_levelled(weights)
    if levelled:
        prev, next = match_neighbour(prev, sec), match_neighbour(next, sec)
    top = brightest_tissue(sec, scale) if prev is not None or next is not None else None
    prev, next = (without_holes(prev, sec, next, scale, top=top),
                  without_holes(next, sec, prev, scale, top=top))
    if levelled:
        measured = measure_level((prev, next) if prev is not None or next is not None
                                 else (sec,))
        prev, sec, next = [None if x is None else level_section(x, level, measured=measured)
                           for x in (prev, sec, next)]
    # levelled sections are new arrays for every section judged: nothing to cache
    p = damage_probability(prev, sec, next, scale=scale, weights=weights,
                           cache=None if levelled else cache)
    bright = bright_blank(sec, (prev, next), scale)
    blank = blank_pixels(sec, scale) if bright.any() else None
    found = (p, bright, prev is None and next is None, blank)
    if not thin_folds:
        return found
    lo, hi = scale  # in units of the stack's scale: black 0, white 1
    unit = [None if x is None else (np.asarray(x, np.float32) - lo) / (hi - lo)
            for x in (prev, sec, next)]
    return (*found, find_thin_folds(*unit))
