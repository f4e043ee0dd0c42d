"""The inputs every stage sees, prepared one way for inference and for training.

:func:`prepare_inputs` turns three crops (previous, damaged, next section) and a mask into the
engine's float32 unit range and computes the initial reference (section 3.1);
:func:`learned_stages` runs the refined reference (3.2) and guided inpainting (3.3) on
batched tensors. The inference engine and the training code both call these two, so the
networks are trained on exactly what they are given at inference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ._intensity import IntensityScale, intensity_matcher
from .names import STAGES
from .reference import initial_reference_unit

__all__ = ["UnitInputs", "prepare_inputs", "learned_stages", "STAGES"]



@dataclass
class UnitInputs:
    """Float32 (H, W) arrays in about [0, 1] and the map back to the data's values.

    ``mask`` is boolean, True on damaged pixels. ``prev`` and ``next`` are matched in
    brightness and contrast to the known part of ``damaged`` (when it has one), as is the
    initial ``reference``. A missing neighbour is replaced by the other one. ``warps`` holds
    the two neighbours warped to the section (Eq. 1 and 2, matched like the reference), or
    None when only one neighbour was given.
    """

    prev: np.ndarray
    damaged: np.ndarray
    next: np.ndarray
    mask: np.ndarray
    reference: np.ndarray
    scale: IntensityScale
    matched: bool
    warps: tuple[np.ndarray, np.ndarray] | None = None

    def tensors(self, device="cpu") -> dict[str, torch.Tensor]:
        """The arrays as (1, 1, H, W) float32 tensors (mask as 0/1)."""
        def t(a):
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None].to(
                device)
        return {"prev": t(self.prev), "damaged": t(self.damaged), "next": t(self.next),
                "mask": t(self.mask), "reference": t(self.reference)}


def prepare_inputs(prev, damaged, next, mask, *, alpha: float = 0.5,
                   flow_method: str = "dis") -> UnitInputs:
    """Normalise a (prev, damaged, next) triplet and compute its initial reference.

    Parameters
    ----------
    prev, next : ndarray, shape (H, W), or None
        Neighbouring sections (one may be ``None``), same dtype as ``damaged``.
    damaged : ndarray, shape (H, W)
    mask : ndarray of bool, shape (H, W)
        True on damaged pixels.
    alpha : float, keyword-only
        Position of ``damaged`` between ``prev`` (0) and ``next`` (1).
    flow_method : {"dis", "farneback"}, keyword-only

    Returns
    -------
    UnitInputs
    """
    if prev is None and next is None:
        raise ValueError("need at least one neighbouring section; both are None.")
    known = ~mask
    crops = [c for c in (prev, next) if c is not None]
    scale = IntensityScale.fit(damaged, *crops, masks=[mask] + [None] * len(crops))
    p = scale.to_unit(prev) if prev is not None else None
    n = scale.to_unit(next) if next is not None else None
    d = scale.to_unit(damaged)
    warps = None
    if p is None:
        ref = n
    elif n is None:
        ref = p
    else:
        ref, *warps = initial_reference_unit(p, n, alpha=alpha, method=flow_method,
                                             return_warps=True)
    p = n if p is None else p
    n = p if n is None else n
    matched = bool(known.sum() >= 16)
    if matched:
        match = intensity_matcher(d, known)
        ref, p, n = match(ref), match(p), match(n)
        if warps is not None:
            warps = [match(w) for w in warps]
    if warps is not None:
        warps = tuple(w.astype(np.float32) for w in warps)
    d = np.where(mask, np.float32(1.0), d).astype(np.float32)
    return UnitInputs(p.astype(np.float32), d, n.astype(np.float32), mask,
                      ref.astype(np.float32), scale, matched, warps)


def learned_stages(flow_net, generator, reference, prev, next, damaged, mask, *,
                   use_refined: bool = True, timings: dict | None = None):
    """Refined reference (Eq. 4-6) then guided inpainting (Eq. 7-12) on batched tensors.

    Parameters
    ----------
    flow_net : RefinedReferenceNet or None
        ``None`` (or ``use_refined=False``) feeds the initial reference to the generator
        directly (the paper's "without refined reference" ablation).
    generator : GuidedInpaintingNet or None
        ``None`` stops after the refined reference.
    reference, prev, next, damaged, mask : Tensor, shape (B, 1, H, W)
        Unit-range tensors as made by :func:`prepare_inputs` (mask 1 = damaged).

    Returns
    -------
    refined : Tensor, shape (B, 1, H, W)
        The refined reference (not composited).
    output : GeneratorOutput or None
        ``output.inpainted`` is composited with the known pixels, ``output.raw`` is not.
    flow_output : FlowOutput or None
        The flows, for the training losses.

    With ``timings`` (a dict), the seconds each network took are added to its
    ``"refined_reference"`` and ``"guided_inpainting"`` entries.
    """
    flow_out = None
    refined = reference
    t0 = time.perf_counter()
    if flow_net is not None and use_refined:
        flow_out = flow_net(reference, damaged, mask)
        refined = flow_out.reference
    t1 = time.perf_counter()
    out = None
    if generator is not None:
        out = generator(refined, prev, next, damaged, mask)
    if timings is not None:
        t2 = time.perf_counter()
        for name, seconds in (("refined_reference", t1 - t0), ("guided_inpainting", t2 - t1)):
            timings[name] = timings.get(name, 0.0) + seconds
    return refined, out, flow_out
