"""The inference engine: repairs the damaged pixels of one section from its neighbours."""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ._checks import as_mask, as_slice, check_same_shape
from ._parallel import side_by_side
from .confidence import repair_confidence
from .flow import FLOW_METHODS
from .pipeline import STAGES, learned_stages, prepare_inputs
from .reference import check_alpha
from .texture import carry_grain, check_mode
from .tiles import blend_ramp, damage_box, damage_boxes, plan_tiles
from .weights import bundled_weights_path, load_weights

__all__ = ["FlowInpainter", "RepairReport", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA when torch sees a GPU, else the CPU; anything else is passed to
    :class:`torch.device` (e.g. ``"cpu"``, ``"cuda:1"``)."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"unknown device {device!r}; use 'auto' (a GPU when there is one), 'cpu', 'cuda' "
            "or 'cuda:N'."
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but torch sees no CUDA GPU; use device='auto' or "
            "'cpu'."
        )
    return dev


def _add(timings: dict, name: str, seconds: float) -> None:
    timings[name] = timings.get(name, 0.0) + seconds


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
    #: mean confidence over the damaged pixels, when the confidence map was asked for
    confidence: float | None = None
    #: "textured" or "faithful" when the generator ran, else "" (no such choice)
    mode: str = ""
    #: seconds spent in each part: "initial_reference" (intensity matching and the optical
    #: flow), "refined_reference" and "guided_inpainting" (the networks), "texture",
    #: "confidence"; the rest of ``seconds`` is overhead (checks, tiling, compositing)
    timings: dict = field(default_factory=dict)


class FlowInpainter:
    """Repairs damaged pixels of a section guided by its two neighbouring sections.

    The engine follows FlowInpaint (ACM MM 2024) in three stages: an *initial reference*
    interpolated between the neighbours by optical flow (section 3.1), a *refined reference*
    that carries the displacement seen in the known region into the hole (3.2, a learned flow
    network), and *guided inpainting* by a generator that sees the refined reference, both
    neighbours and the known part of the section (3.3). The stages it runs are listed in
    :attr:`stages` and in every :class:`RepairReport`.

    Parameters
    ----------
    weights : None, str or Path, keyword
        ``None`` uses the weights bundled with the package for ``mode``
        (:func:`~napari_flowinpaint.engine.bundled_weights_path`); or a ``.safetensors``
        file made by training or fine-tuning (:func:`~napari_flowinpaint.engine.load_weights`).
        If no weights are found, only the initial reference runs (with a warning).
    device : str or torch.device, keyword-only
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda[:N]"``.
    stages : {"guided_inpainting", "refined_reference", "initial_reference"}, keyword-only
        The deepest stage to run (default: all three). ``"refined_reference"`` returns the
        composited refined reference, ``"initial_reference"`` the optical-flow interpolation.
    flow_method : {"dis", "farneback"}, keyword-only
        Optical flow for the initial reference (DIS is faster at equal quality on EM data).
    margin : int, keyword-only
        Context, in pixels, kept around the damaged region's bounding box: the work is done
        on that box, so a small hole in a huge section is cheap.
    mode : {"textured", "faithful"}, keyword-only
        ``"textured"`` (default) keeps the generator's structure and gives it the grain of
        real tissue, carried from the refined reference and matched to the section's known
        pixels (:func:`~napari_flowinpaint.engine.texture.carry_grain`): it looks like tissue
        and serves segmentation better. ``"faithful"`` returns the generator's output, the
        least-error repair (smooth): pick it when you measure error against a truth. Only
        the full pipeline (``stages="guided_inpainting"``) has the two modes.

    Examples
    --------
    >>> engine = FlowInpainter()
    >>> repaired = engine.inpaint(prev, damaged, next, mask)           # doctest: +SKIP
    >>> repaired, report = engine.inpaint(prev, damaged, next, mask,
    ...                                   return_report=True)          # doctest: +SKIP
    >>> report.stages                                                   # doctest: +SKIP
    ('initial_reference', 'refined_reference', 'guided_inpainting')
    """

    def __init__(self, weights=None, *, device="auto", stages: str = "guided_inpainting",
                 flow_method: str = "dis", margin: int = 48, mode: str = "textured"):
        if flow_method not in FLOW_METHODS:
            raise ValueError(
                f"unknown flow_method {flow_method!r}; expected one of {FLOW_METHODS}."
            )
        if stages not in STAGES:
            raise ValueError(f"unknown stages {stages!r}; expected the deepest stage to run, "
                             f"one of {STAGES}.")
        if int(margin) < 0:
            raise ValueError(f"margin must be >= 0 pixels, got {margin}.")
        self.mode = check_mode(mode)
        self._bundled = weights is None  # the package's weights of the mode (see with_mode)
        self.device = resolve_device(device)
        self.flow_method = flow_method
        self.margin = int(margin)
        self.weights = None
        deepest = STAGES.index(stages)
        if deepest > 0:
            if weights is None and bundled_weights_path(self.mode) is None:
                warnings.warn(
                    "no bundled weights were found: only the optical-flow initial reference "
                    "will run. Reinstall napari-flowinpaint or pass weights=FILE.",
                    UserWarning, stacklevel=2)
                deepest = 0
            else:
                self.weights = load_weights(weights, mode=self.mode)
                for net in (self.weights.flow_net, self.weights.generator):
                    net.to(self.device)
                    if self.device.type == "cpu":
                        net.to(memory_format=torch.channels_last)
        self.stages: tuple[str, ...] = STAGES[: deepest + 1]
        # weights trained without the refined reference (an ablation) feed the initial
        # reference to the generator; their meta data says so
        settings = (self.weights.meta.get("training", {}).get("settings", {})
                    if self.weights is not None else {})
        self._use_refined = bool(settings.get("use_refined", True))
        if not self._use_refined and "guided_inpainting" in self.stages:
            self.stages = ("initial_reference", "guided_inpainting")
        #: most pixels a side of the tiles the learned stages work on (bounded memory on
        #: huge regions); tiles are fitted to the region (engine.tiles.plan_tiles): a
        #: 1024^2 region takes 2 x 2 tiles of 544 px. At 1024^2 and 30 % damage they took
        #: 0.80 s in the networks where 20 tiles of 256 px took 0.93 s, and repaired whole
        #: 1024^2 callosum and cdeep3m sections within -0.06..+0.18 dB of them (mean +0.03)
        self.tile = 576
        #: most pixels the networks take in one batch of tiles: 512^2, one tile of 512 px
        #: or four of 256 px, so memory peaks as with one 512 px tile. Eight tiles at once
        #: were not faster on 2 cores and held ~100 MB more
        self.batch_pixels = 512 * 512
        #: batches of tiles run side by side on this many threads, torch on one thread in
        #: each (``None``: as many as torch's threads, :func:`torch.get_num_threads`; 1:
        #: one batch after the other, each operation split over torch's threads). Beside
        #: two busy processes on 2 cores a 1024^2 repair took 2-3x less time than with the
        #: threads splitting each operation; idle, the same time
        self.workers: int | None = None

    @property
    def method(self) -> str:
        """Name of the deepest stage this engine runs."""
        return self.stages[-1]

    def with_mode(self, mode: str) -> FlowInpainter:
        """This engine repairing in ``mode`` (``self`` when it already does).

        A copy sharing the networks; but an engine running the bundled weights gets those of
        ``mode`` when the package ships a file for it (:func:`bundled_weights_path`), with
        the same device, stages, flow method, margin and tiling.
        """
        if check_mode(mode) == self.mode:
            return self
        if (self._bundled and self.weights is not None
                and bundled_weights_path(mode) != self.weights.path):
            other = FlowInpainter(device=self.device, stages=self.stages[-1],
                                  flow_method=self.flow_method, margin=self.margin, mode=mode)
            other.tile, other.batch_pixels, other.workers = (self.tile, self.batch_pixels,
                                                             self.workers)
            return other
        other = copy.copy(self)
        other.mode = mode
        return other

    def __repr__(self) -> str:
        w = "" if self.weights is None else f", weights='{self.weights.path.name}'"
        return (f"FlowInpainter(stages={self.stages}{w}, device='{self.device}', "
                f"flow_method='{self.flow_method}', margin={self.margin}, mode='{self.mode}')")

    def _learned(self, u, timings: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run the learned stages on prepared inputs; the unit-range result (H, W) and the
        refined reference it was guided by (the same array when no generator runs).

        Regions larger than :attr:`tile` pixels a side are processed in overlapping tiles
        fitted to the region (only those holding damaged pixels), blended with linear ramps,
        so memory stays bounded on huge sections; scattered damage takes tiles of half that
        side where they mean less work (:func:`~napari_flowinpaint.engine.tiles.plan_tiles`).
        """
        t = u.tensors(self.device)
        gen = self.weights.generator if self.stages[-1] == "guided_inpainting" else None
        h, w = u.mask.shape
        out = torch.zeros((h, w), dtype=torch.float32)
        guide = torch.zeros((h, w), dtype=torch.float32) if gen is not None else out
        weight = torch.zeros((h, w), dtype=torch.float32)
        tiles, overlap = plan_tiles(u.mask, self.tile)
        # tiles of one shape go through the networks together, up to batch_pixels at once:
        # a few large operations instead of many small ones (each costs a wake-up of every
        # thread, slow on a busy machine)
        groups: dict[tuple[int, int], list] = {}
        for tile in tiles:
            (y0, y1), (x0, x1) = tile
            groups.setdefault((y1 - y0, x1 - x0), []).append(tile)
        # batches go through the networks side by side, one per torch thread (see
        # engine._parallel), each a share of batch_pixels (at least one tile): about
        # batch_pixels in flight at once, or one large tile per worker
        workers = self.workers if self.workers is not None else torch.get_num_threads()
        workers = max(1, min(int(workers), len(tiles))) if self.device.type == "cpu" else 1
        batches = []
        for (th, tw), same in groups.items():
            per = max(1, self.batch_pixels // (th * tw) // workers)
            batches += [same[i:i + per] for i in range(0, len(same), per)]

        spent: list[dict] = []  # seconds per network, per batch (on its own thread)

        def run(batch):
            own: dict = {}
            spent.append(own)
            with torch.inference_mode():
                part = {k: torch.cat([v[..., y0:y1, x0:x1] for (y0, y1), (x0, x1) in batch])
                        for k, v in t.items()}
                if self.device.type == "cpu":
                    part = {k: v.contiguous(memory_format=torch.channels_last)
                            for k, v in part.items()}
                refined, res, _ = learned_stages(
                    self.weights.flow_net, gen, part["reference"], part["prev"],
                    part["next"], part["damaged"], part["mask"],
                    use_refined=self._use_refined, timings=own)
            return refined, res

        start = time.perf_counter()

        for batch, (refined, res) in zip(batches, side_by_side(run, batches, workers),
                                         strict=True):
            for i, ((y0, y1), (x0, x1)) in enumerate(batch):
                ramp = blend_ramp(y1 - y0, y0 > 0, y1 < h, overlap)[:, None] * blend_ramp(
                    x1 - x0, x0 > 0, x1 < w, overlap)[None, :]
                if res is not None:
                    out[y0:y1, x0:x1] += res.raw[i, 0].float().cpu() * ramp
                guide[y0:y1, x0:x1] += refined[i, 0].float().cpu() * ramp
                weight[y0:y1, x0:x1] += ramp
        if timings is not None:  # the wall time, shared out as the networks' thread time
            wall = time.perf_counter() - start
            busy = {k: sum(d.get(k, 0.0) for d in spent) for k in set().union(*spent)}
            total = sum(busy.values()) or 1.0
            for k, v in busy.items():
                _add(timings, k, wall * v / total)
        weight = weight.clamp_min(1e-6)
        result = (out / weight).numpy()
        return result, (result if gen is None else (guide / weight).numpy())

    def inpaint(self, prev, damaged, next, mask, *, alpha: float = 0.5,
                return_confidence: bool = False, return_report: bool = False):
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
        return_confidence : bool, keyword-only
            Also return the confidence map
            (:func:`~napari_flowinpaint.engine.confidence.repair_confidence`).
        return_report : bool, keyword-only
            Also return a :class:`RepairReport`.

        Returns
        -------
        repaired : ndarray, shape (H, W), dtype of ``damaged``
            A new array; pixels outside the mask are bit-identical to ``damaged`` (Eq. 12).
        confidence : ndarray, shape (H, W), float32
            Only with ``return_confidence=True``: per-pixel confidence in [0, 1] (1 =
            reliable, and 1 outside the mask); its mean over the mask is in the report's
            ``confidence``.
        report : RepairReport
            Only with ``return_report=True`` (after ``confidence`` when both are asked for).
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
        alpha = check_alpha(alpha)
        side = ("both" if len(neighbours) == 2 else
                "previous only" if "prev" in neighbours else "next only")
        notes: list[str] = []
        out = damaged.copy()
        confidence = np.ones(damaged.shape, np.float32) if return_confidence else None
        timings: dict = {}
        n_bad = int(mask.sum())
        if n_bad == 0:
            warnings.warn("the mask marks no damaged pixel; returning an unchanged copy.",
                          UserWarning, stacklevel=2)
            box = (0, 0, 0, 0)
            notes.append("empty mask: nothing repaired")
        else:
            box = damage_box(mask, self.margin)
            boxes = damage_boxes(mask, self.margin)
            if len(boxes) > 1:
                notes.append(f"{len(boxes)} separate damaged areas repaired one by one")
            for (y0, y1, x0, x1), own in boxes:
                m = np.ascontiguousarray(mask[y0:y1, x0:x1])
                d = damaged[y0:y1, x0:x1]
                crops = {n: a[y0:y1, x0:x1] for n, a in neighbours.items()}
                known = ~m
                t_box = time.perf_counter()
                u = prepare_inputs(crops.get("prev"), d, crops.get("next"), m, alpha=alpha,
                                   flow_method=self.flow_method)
                _add(timings, "initial_reference", time.perf_counter() - t_box)
                if not u.matched:
                    notes.append("whole section missing: repaired from the neighbours alone")
                if len(self.stages) > 1:
                    ref, refined = self._learned(u, timings)
                    faithful = ref
                    if self.mode == "textured" and self.stages[-1] == "guided_inpainting":
                        t_tex = time.perf_counter()
                        ref = carry_grain(ref, refined, u.damaged, m, neighbours=(u.prev, u.next))
                        _add(timings, "texture", time.perf_counter() - t_tex)
                else:
                    ref = faithful = u.reference
                ranges = [(float(c.min()), float(c.max())) for c in crops.values()]
                if known.any():
                    ranges.append((float(d[known].min()), float(d[known].max())))
                lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
                filled = u.scale.from_unit(ref, clip_to=(lo, hi))
                # boxes may overlap in their margins; each repairs only its own damage
                out[y0:y1, x0:x1][own] = filled[own]
                if confidence is not None:
                    # judged on the structure (the generator's output) in either mode
                    t_conf = time.perf_counter()
                    conf = repair_confidence(faithful, u.reference, u.damaged, m, u.warps)
                    _add(timings, "confidence", time.perf_counter() - t_conf)
                    confidence[y0:y1, x0:x1][own] = conf[own]
        if side != "both":
            notes.append(f"one neighbour only ({side}): its content is used without "
                         "interpolation")
        mean_conf = (float(confidence[mask].mean()) if confidence is not None and n_bad
                     else None)
        report = RepairReport(
            method=self.method, stages=self.stages, neighbours=side, box=box,
            damaged_fraction=n_bad / mask.size, seconds=time.perf_counter() - t0, notes=notes,
            confidence=mean_conf,
            mode=self.mode if self.stages[-1] == "guided_inpainting" else "",
            timings=timings,
        )
        result = (out,) + ((confidence,) if return_confidence else ()) + (
            (report,) if return_report else ())
        return result if len(result) > 1 else out
