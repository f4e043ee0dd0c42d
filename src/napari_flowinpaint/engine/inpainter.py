"""The inference engine: repairs the damaged pixels of one section from its neighbours."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ._checks import as_mask, as_slice, check_same_shape
from ._intensity import IntensityScale, match_intensity
from .flow import FLOW_METHODS
from .reference import _check_alpha, initial_reference_unit

__all__ = ["FlowInpainter", "RepairReport", "resolve_device", "damage_box"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA when torch sees a GPU, else the CPU; anything else is passed to
    :class:`torch.device` (e.g. ``"cpu"``, ``"cuda:1"``)."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but torch sees no CUDA GPU; use device='auto' or "
            "'cpu'."
        )
    return dev


def damage_box(mask: np.ndarray, margin: int, min_size: int = 64):
    """Bounding box ``(y0, y1, x0, x1)`` of the True pixels of ``mask`` grown by ``margin``
    on each side and to at least ``min_size`` pixels per axis, clipped to the image."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    box = []
    for idx, n in ((ys, mask.shape[0]), (xs, mask.shape[1])):
        lo, hi = int(idx[0]) - margin, int(idx[-1]) + 1 + margin
        if hi - lo < min_size:
            grow = min_size - (hi - lo)
            lo -= grow // 2
            hi += grow - grow // 2
        if lo < 0:
            hi, lo = hi - lo, 0
        if hi > n:
            lo, hi = max(0, lo - (hi - n)), n
        box += [lo, hi]
    return tuple(box)


@dataclass
class RepairReport:
    """What :meth:`FlowInpainter.inpaint` did, for logs, the GUI and benchmarks."""

    method: str
    stages: tuple[str, ...]
    neighbours: str  # "both", "previous only" or "next only"
    box: tuple[int, int, int, int]  # (y0, y1, x0, x1) of the region that was processed
    damaged_fraction: float
    seconds: float
    notes: list[str] = field(default_factory=list)


class FlowInpainter:
    """Repairs damaged pixels of a section guided by its two neighbouring sections.

    The engine follows FlowInpaint (ACM MM 2024): an *initial reference* interpolated between
    the neighbours by optical flow (section 3.1), then a *refined reference* and *guided
    inpainting* by learned networks (sections 3.2-3.3). This release ships no trained weights
    yet, so the engine runs the initial reference only and says so in :attr:`stages` and in
    every :class:`RepairReport`.

    Parameters
    ----------
    weights : None, keyword
        ``None`` uses the weights bundled with the package; none are bundled in this version,
        so only the initial reference runs.
    device : str or torch.device, keyword-only
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda[:N]"``.
    flow_method : {"dis", "farneback"}, keyword-only
        Optical flow for the initial reference (DIS is faster at equal quality on EM data).
    margin : int, keyword-only
        Context, in pixels, kept around the damaged region's bounding box: the work is done
        on that box, so a small hole in a huge section is cheap.

    Examples
    --------
    >>> engine = FlowInpainter()
    >>> repaired = engine.inpaint(prev, damaged, next, mask)           # doctest: +SKIP
    >>> repaired, report = engine.inpaint(prev, damaged, next, mask,
    ...                                   return_report=True)          # doctest: +SKIP
    >>> report.method                                                   # doctest: +SKIP
    'initial_reference'
    """

    def __init__(self, weights=None, *, device="auto", flow_method: str = "dis",
                 margin: int = 48):
        if weights is not None:
            raise ValueError(
                f"cannot load weights {weights!r}: this version of napari-flowinpaint has no "
                "learned stages yet and runs the optical-flow initial reference only. "
                "Use FlowInpainter() with weights=None."
            )
        if flow_method not in FLOW_METHODS:
            raise ValueError(
                f"unknown flow_method {flow_method!r}; expected one of {FLOW_METHODS}."
            )
        if int(margin) < 0:
            raise ValueError(f"margin must be >= 0 pixels, got {margin}.")
        self.device = resolve_device(device)
        self.flow_method = flow_method
        self.margin = int(margin)
        self.stages: tuple[str, ...] = ("initial_reference",)

    @property
    def method(self) -> str:
        """Name of the deepest stage this engine runs."""
        return self.stages[-1]

    def __repr__(self) -> str:
        return (f"FlowInpainter(stages={self.stages}, device='{self.device}', "
                f"flow_method='{self.flow_method}', margin={self.margin})")

    def reference(self, prev, next, *, alpha: float = 0.5):
        """The reference image for the section between ``prev`` and ``next`` (normalised
        float32); either neighbour may be ``None`` (then the other one is the reference)."""
        if prev is None:
            return next
        if next is None:
            return prev
        return initial_reference_unit(prev, next, alpha=alpha, method=self.flow_method)

    def inpaint(self, prev, damaged, next, mask, *, alpha: float = 0.5,
                return_report: bool = False):
        """Repair the pixels of ``damaged`` marked in ``mask``.

        Parameters
        ----------
        prev, next : array_like, shape (H, W), or None
            The neighbouring sections before and after. One of them may be ``None`` at the
            ends of a stack: the other one then serves as the reference (no interpolation).
        damaged : array_like, shape (H, W)
            The damaged section: uint8, uint16, float32 or float64. Not modified.
        mask : array_like, shape (H, W)
            True (or a nonzero label) marks damaged pixels.
        alpha : float, keyword-only
            Position of ``damaged`` between ``prev`` (0) and ``next`` (1).
        return_report : bool, keyword-only
            Also return a :class:`RepairReport`.

        Returns
        -------
        repaired : ndarray, shape (H, W), dtype of ``damaged``
            A new array; pixels outside the mask are bit-identical to ``damaged`` (Eq. 12).
        report : RepairReport
            Only with ``return_report=True``.
        """
        t0 = time.perf_counter()
        damaged = as_slice(damaged, "damaged")
        if prev is None and next is None:
            raise ValueError(
                "inpaint needs at least one neighbouring section (prev or next); both are None."
            )
        neighbours = {n: as_slice(a, n) for n, a in (("prev", prev), ("next", next))
                      if a is not None}
        check_same_shape(damaged=damaged, **neighbours)
        for name, arr in neighbours.items():
            if arr.dtype != damaged.dtype:
                raise TypeError(
                    f"{name} has dtype {arr.dtype} but damaged has {damaged.dtype}; "
                    "the sections of a stack must share one dtype."
                )
        mask = as_mask(mask, damaged.shape)
        alpha = _check_alpha(alpha)
        side = ("both" if len(neighbours) == 2 else
                "previous only" if "prev" in neighbours else "next only")
        notes: list[str] = []
        out = damaged.copy()
        n_bad = int(mask.sum())
        if n_bad == 0:
            warnings.warn("the mask marks no damaged pixel; returning an unchanged copy.",
                          UserWarning, stacklevel=2)
            box = (0, 0, 0, 0)
            notes.append("empty mask: nothing repaired")
        else:
            box = damage_box(mask, self.margin)
            y0, y1, x0, x1 = box
            m = np.ascontiguousarray(mask[y0:y1, x0:x1])
            d = damaged[y0:y1, x0:x1]
            crops = {n: a[y0:y1, x0:x1] for n, a in neighbours.items()}
            known = ~m
            scale = IntensityScale.fit(d, *crops.values(),
                                       masks=[m] + [None] * len(crops))
            ref = self.reference(
                scale.to_unit(crops["prev"]) if "prev" in crops else None,
                scale.to_unit(crops["next"]) if "next" in crops else None,
                alpha=alpha,
            )
            if known.sum() >= 16:
                ref = match_intensity(ref, scale.to_unit(d), known)
            else:
                notes.append("whole section missing: the reference is returned as it is")
            ranges = [(float(c.min()), float(c.max())) for c in crops.values()]
            if known.any():
                ranges.append((float(d[known].min()), float(d[known].max())))
            lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
            filled = scale.from_unit(ref, clip_to=(lo, hi))
            out[y0:y1, x0:x1][m] = filled[m]
        if side != "both":
            notes.append(f"one neighbour only ({side}): its content is used without "
                         "interpolation")
        report = RepairReport(
            method=self.method, stages=self.stages, neighbours=side, box=box,
            damaged_fraction=n_bad / mask.size, seconds=time.perf_counter() - t0, notes=notes,
        )
        return (out, report) if return_report else out
