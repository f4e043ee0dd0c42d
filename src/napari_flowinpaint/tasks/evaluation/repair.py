"""Score repair methods on simulated damage of a real stack (PSNR, SSIM, FSIM, sharpness).

The protocol follows FlowInpaint's section 4.1: a section ``z`` whose neighbours ``z - K`` and
``z + K`` lie in the chosen z range is picked at random, a random crop is cut at the same
position in the three sections, an irregular mask at the target damaged fraction
(:func:`~napari_flowinpaint.tasks.simulation.random_mask`, within 2 %) marks the damage and the
damaged pixels are set to white (Eq. 22). Every method repairs the same samples; its result
is composited (known pixels kept from the damaged crop) and compared with the true crop.

Each sample's randomness is derived from ``(seed, ratio index, sample index)`` only, so the
samples are the same whatever methods are chosen and the same command gives the same numbers.

Methods are looked up in :data:`~napari_flowinpaint.tasks.evaluation.baselines.METHODS`.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ... import __version__
from ...engine import as_slice, cast_to
from ...engine.files import write_text
from ..simulation import MASK_KINDS, apply_damage, random_mask
from . import metrics
from .baselines import DEFAULT_METHODS, METHODS
from .membranes import membrane_f1

__all__ = ["METRICS", "evaluate", "format_table", "parse_z_range", "write_report"]

#: Metric names of a result row, in table order.
METRICS = ("psnr", "psnr_hole", "ssim", "fsim", "sharpness", "grain", "membrane_f1",
           "membrane_f1_undamaged", "seconds", "n")
#: Metrics that are undefined on some samples (a flat truth, no membrane in the hole): their
#: means leave those samples out.
_SOMETIMES_UNDEFINED = ("sharpness", "grain", "membrane_f1", "membrane_f1_undamaged")

def parse_z_range(z_range, n_sections: int) -> tuple[int, int]:
    """``(start, stop)`` of the sections to sample from, like Python's ``range``.

    ``z_range`` is None (all sections), a string in slice syntax (``"200:"``, ``":-10"``,
    ``"5:25"``), a :class:`slice` or a pair ``(start, stop)`` (either may be None). Negative
    values count from the end. A step other than 1 is refused.
    """
    if z_range is None:
        sl = slice(None)
    elif isinstance(z_range, slice):
        sl = z_range
    elif isinstance(z_range, str):
        parts = z_range.strip().split(":")
        if len(parts) not in (2, 3):
            raise ValueError(
                f"z range {z_range!r} is not in slice syntax 'start:stop' (e.g. '200:', "
                "'10:20', ':-5')."
            )
        try:
            vals = [int(p) if p.strip() else None for p in parts]
        except ValueError:
            raise ValueError(
                f"z range {z_range!r} must hold integers in slice syntax, e.g. '200:'."
            ) from None
        sl = slice(*vals)
    else:
        try:
            start, stop = z_range
        except (TypeError, ValueError):
            raise TypeError(
                f"z_range must be None, a 'start:stop' string, a slice or a (start, stop) "
                f"pair, got {z_range!r}."
            ) from None
        sl = slice(start, stop)
    start, stop, step = sl.indices(n_sections)
    if step != 1:
        raise ValueError(f"z range {z_range!r} has a step of {step}; only contiguous ranges "
                         "are supported.")
    if stop <= start:
        raise ValueError(f"z range {z_range!r} selects no section of a stack of "
                         f"{n_sections} sections.")
    return start, stop


def _data_range(stack, start: int, stop: int) -> float:
    dtype = np.dtype(stack.dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(info.max) - float(info.min)
    lo = min(float(np.min(stack[z])) for z in range(start, stop))
    hi = max(float(np.max(stack[z])) for z in range(start, stop))
    return hi - lo if hi > lo else 1.0


def _finite_or_none(value: float):
    return value if math.isfinite(value) else None


def evaluate(stack, *, spacing: int, z_range=None, crop: int | None = 256,
             samples: int = 100, ratios: Sequence[float] = (0.1, 0.3, 0.5), seed: int = 0,
             methods: Sequence[str] = DEFAULT_METHODS, mask_kind: str = "mixed",
             membranes=None, membrane_classifier=None, per_sample: bool = False,
             progress: Callable[[int, int], None] | None = None,
             on_sample: Callable[[dict], None] | None = None,
             metrics_only: Sequence[str] | None = None) -> dict:
    """Score repair methods on simulated damage of ``stack``.

    Parameters
    ----------
    stack : array_like, shape (Z, Y, X)
        numpy, zarr or dask array of uint8, uint16, float32 or float64 sections; only the
        needed crops are read. Never modified.
    spacing : int, keyword-only
        Distance ``K`` in sections from the damaged section to each neighbour (1 for ssTEM,
        3-5 for isotropic FIB-SEM).
    z_range : str, slice or (start, stop), optional, keyword-only
        Sections to sample from, in Python slice syntax (``"200:"``); both neighbours must
        lie inside the range too. Default: the whole stack.
    crop : int or None, keyword-only
        Side of the square crops; ``None`` or 0 uses the whole sections. A crop larger
        than the sections is cut to their size (with a warning).
    samples : int, keyword-only
        Samples per damage ratio.
    ratios : sequence of float, keyword-only
        Damaged fractions to test, each in (0, 1); each mask is within 2 % of its ratio.
    seed : int, keyword-only
        Seed of all random choices (non-negative).
    methods : sequence of str or dict, keyword-only
        Names in :data:`METHODS`, or a dict ``name -> callable(prev, damaged, next, mask)``
        to score functions that are not registered (e.g. an engine with other weights).
    mask_kind : {"strokes", "blobs", "bands", "mixed"}, keyword-only
        Shape of the simulated damage (see
        :func:`~napari_flowinpaint.tasks.simulation.random_mask`).
    membranes : array_like, shape (Z, Y, X), optional, keyword-only
        Membrane labels of ``stack`` (nonzero = cell boundary). With ``membrane_classifier``
        (a trained :class:`~napari_flowinpaint.tasks.evaluation.MembraneClassifier`) every row
        gets the downstream check: ``membrane_f1`` in the hole of the repaired crop and
        ``membrane_f1_undamaged``, the classifier's F1 there on the undamaged crop
        (:func:`~napari_flowinpaint.tasks.evaluation.membrane_f1`, 2 px tolerance).
    per_sample : bool, keyword-only
        Also give every row ``per_sample``: ``{"z": [...], "psnr_hole": [...]}``, the damaged
        section and the PSNR in the hole of each sample in order (None where not finite).
        Every method repairs the same samples, so two methods' lists pair up one to one.
    progress : callable, optional, keyword-only
        ``progress(done, total)`` after each sample.
    on_sample : callable, optional, keyword-only
        ``on_sample(info)`` after each sample, before ``progress``, to look at the repairs
        themselves: ``info`` holds ``ratio`` and ``index`` (its damage ratio's and its own
        position), the section ``z``, the crop's top-left corner ``y`` and ``x``, and the
        crops ``truth``, ``damaged``, ``mask`` and ``repaired`` (method -> the repair, with
        the known pixels kept, as scored). The arrays are not used again; keep them.
    metrics_only : sequence of str, optional, keyword-only
        Compute only these of ``psnr``, ``psnr_hole``, ``ssim``, ``fsim``, ``sharpness`` and
        ``grain`` (the others are given as None): a score that needs only the PSNR in the
        hole skips the rest (FSIM costs more than the rest together). Default: all.

    Returns
    -------
    dict
        ``{"config": {...}, "results": {method: {ratio: row}}}`` where ``ratio`` is the
        ratio as a string (``"0.1"``) and ``row`` holds the means over the samples of
        ``psnr``, ``psnr_hole`` (dB), ``ssim``, ``fsim``, ``sharpness`` (gradient energy in
        the hole relative to the truth), ``grain`` (high-frequency standard deviation in the
        hole relative to the truth, :func:`~napari_flowinpaint.tasks.evaluation.grain_ratio`),
        ``membrane_f1`` and ``membrane_f1_undamaged`` (None without ``membranes``),
        ``seconds`` (per sample, the method's call only) and the number of samples ``n``.
        A mean that is not finite (e.g. the PSNR of a perfect repair) is given as None.

    References
    ----------
    .. [1] FlowInpaint: Serial section microscopy image inpainting guided by axial optical
       flow. ACM MM 2024, section 4.1.
    """
    shape = tuple(getattr(stack, "shape", np.shape(stack)))
    if len(shape) != 3:
        raise ValueError(
            f"evaluate needs a 3-D stack with axes (z, y, x), got shape {shape}. A 2-D image "
            "has no neighbouring sections to repair from."
        )
    spacing = int(spacing)
    if spacing < 1:
        raise ValueError(f"spacing must be >= 1 section, got {spacing}.")
    start, stop = parse_z_range(z_range, shape[0])
    candidates = np.arange(start + spacing, stop - spacing)
    if candidates.size == 0:
        raise ValueError(
            f"spacing {spacing} is too large for the z range [{start}, {stop}) of "
            f"{stop - start} section(s): a damaged section needs both neighbours "
            f"{spacing} sections away inside the range, i.e. at least {2 * spacing + 1} "
            "sections. Use a smaller --spacing or a wider --z-range."
        )
    h, w = shape[1:]
    if crop in (None, 0):
        ch, cw = h, w
    else:
        crop = int(crop)
        if crop < 16:
            raise ValueError(f"crop must be at least 16 pixels (or 0 for whole sections), "
                             f"got {crop}.")
        ch, cw = min(crop, h), min(crop, w)
        if (ch, cw) != (crop, crop):
            warnings.warn(
                f"crop {crop} is larger than the sections ({h} x {w}): the crops are "
                f"{ch} x {cw} pixels instead.", UserWarning, stacklevel=2,
            )
    samples = int(samples)
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}.")
    ratios = [float(r) for r in np.atleast_1d(ratios)]
    if not ratios:
        raise ValueError("give at least one damage ratio.")
    for r in ratios:
        if not 0.0 < r < 1.0:
            raise ValueError(f"damage ratios must lie in (0, 1), got {r}.")
    keys = [f"{r:g}" for r in ratios]
    if len(set(keys)) != len(keys):
        raise ValueError(f"the damage ratios {ratios} contain duplicates.")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}.")
    if isinstance(methods, dict):
        functions = dict(methods)
        methods = list(functions)
    else:
        methods = [str(m) for m in ([methods] if isinstance(methods, str) else methods)]
        functions = {m: METHODS[m] for m in methods if m in METHODS}
    if not methods:
        raise ValueError("give at least one method.")
    unknown = [m for m in methods if m not in functions]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; available: {sorted(METHODS)}.")
    if len(set(methods)) != len(methods):
        raise ValueError(f"the methods {methods} contain duplicates.")
    if mask_kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {mask_kind!r}; expected one of {MASK_KINDS}.")
    if (membranes is None) != (membrane_classifier is None):
        raise ValueError("the downstream check needs both membranes (the labels) and "
                         "membrane_classifier (a trained MembraneClassifier); give both or "
                         "neither.")
    if membranes is not None and tuple(np.shape(membranes)) != shape:
        raise ValueError(f"membranes has shape {tuple(np.shape(membranes))}, the stack "
                         f"{shape}: give the labels of this very stack.")
    if not hasattr(stack, "dtype"):
        stack = np.asarray(stack)
    data_range = _data_range(stack, start, stop)
    image_metrics = {
        "psnr": lambda t, o, _m: metrics.psnr(t, o, data_range=data_range),
        "psnr_hole": lambda t, o, m: metrics.psnr_hole(t, o, m, data_range=data_range),
        "ssim": lambda t, o, _m: metrics.ssim(t, o, data_range=data_range),
        "fsim": lambda t, o, _m: metrics.fsim(t, o, data_range=data_range),
        "sharpness": metrics.sharpness_ratio, "grain": metrics.grain_ratio}
    wanted = set(image_metrics if metrics_only is None else metrics_only)
    if wanted - set(image_metrics):
        raise ValueError(f"unknown metrics {sorted(wanted - set(image_metrics))}; expected "
                         f"some of {list(image_metrics)}.")

    config = {
        "spacing": spacing, "z_range": f"{start}:{stop}",
        "crop": None if crop in (None, 0) else crop, "crop_shape": [ch, cw],
        "samples": samples, "ratios": ratios, "seed": seed, "methods": methods,
        "mask_kind": mask_kind, "downstream": membranes is not None, "shape": list(shape),
        "dtype": str(np.dtype(stack.dtype)),
        "data_range": data_range, "version": __version__,
    }
    per = {m: {k: {name: [] for name in METRICS[:-1]} for k in keys} for m in methods}
    sections = {k: [] for k in keys}
    total, done = len(ratios) * samples, 0
    for ri, ratio in enumerate(ratios):
        for si in range(samples):
            rng = np.random.default_rng([seed, ri, si])
            z = int(candidates[rng.integers(candidates.size)])
            sections[keys[ri]].append(z)
            y0 = int(rng.integers(0, h - ch + 1))
            x0 = int(rng.integers(0, w - cw + 1))
            mask = random_mask((ch, cw), ratio, rng, kind=mask_kind)
            window = (slice(y0, y0 + ch), slice(x0, x0 + cw))
            prev = np.ascontiguousarray(stack[(z - spacing, *window)])
            truth = as_slice(np.ascontiguousarray(stack[(z, *window)]), f"section {z}")
            nxt = np.ascontiguousarray(stack[(z + spacing, *window)])
            damaged = apply_damage(truth, mask)
            labels = undamaged_f1 = None
            if membranes is not None:
                labels = np.asarray(membranes[(z, *window)]) != 0
                undamaged_f1 = membrane_f1(membrane_classifier.predict(truth), labels,
                                           mask)["f1"]
            repaired = {}
            for m in methods:
                t0 = time.perf_counter()
                result = functions[m](prev.copy(), damaged.copy(), nxt.copy(), mask.copy())
                seconds = time.perf_counter() - t0
                result = np.asarray(result)
                if result.shape != truth.shape:
                    raise ValueError(f"method {m!r} returned shape {result.shape}; expected "
                                     f"{truth.shape}.")
                out = repaired[m] = damaged.copy()
                out[mask] = cast_to(result[mask], truth.dtype) \
                    if result.dtype != truth.dtype else result[mask]
                row = per[m][keys[ri]]
                for name, score in image_metrics.items():
                    row[name].append(score(truth, out, mask) if name in wanted else math.nan)
                if labels is not None:
                    row["membrane_f1"].append(
                        membrane_f1(membrane_classifier.predict(out), labels, mask)["f1"])
                    row["membrane_f1_undamaged"].append(undamaged_f1)
                row["seconds"].append(seconds)
            if on_sample is not None:
                on_sample({"ratio": ratio, "index": si, "z": z, "y": y0, "x": x0,
                           "truth": truth, "damaged": damaged, "mask": mask,
                           "repaired": repaired})
            done += 1
            if progress is not None:
                progress(done, total)
    results = {}
    for m in methods:
        results[m] = {}
        for k in keys:
            row = {}
            for name, values in per[m][k].items():
                v = np.asarray(values, dtype=np.float64)
                if name in _SOMETIMES_UNDEFINED:
                    v = v[~np.isnan(v)]
                row[name] = _finite_or_none(float(np.mean(v))) if v.size else None
            row["n"] = samples
            if per_sample:
                row["per_sample"] = {"z": list(sections[k]), "psnr_hole": [
                    _finite_or_none(float(v)) for v in per[m][k]["psnr_hole"]]}
            results[m][k] = row
    return {"config": config, "results": results}


def format_table(report: dict) -> str:
    """The results of :func:`evaluate` as a markdown table (one row per method and ratio)."""
    downstream = report.get("config", {}).get("downstream", False)
    lines = ["| method | ratio | PSNR (dB) | PSNR hole (dB) | SSIM | FSIM | sharpness | grain "
             + ("| membrane F1 (undamaged) " if downstream else "") + "| s/sample | n |",
             "|---|---|---|---|---|---|---|---|" + ("---|" if downstream else "") + "---|---|"]

    def fmt(v, digits):
        return "n/a" if v is None else f"{v:.{digits}f}"

    for m, by_ratio in report["results"].items():
        for k, row in by_ratio.items():
            lines.append(
                f"| {m} | {k} | {fmt(row['psnr'], 2)} | {fmt(row['psnr_hole'], 2)} | "
                f"{fmt(row['ssim'], 4)} | {fmt(row['fsim'], 4)} | {fmt(row['sharpness'], 3)} | "
                f"{fmt(row.get('grain'), 3)} | "
                + (f"{fmt(row.get('membrane_f1'), 3)} "
                   f"({fmt(row.get('membrane_f1_undamaged'), 3)}) | " if downstream else "")
                + f"{fmt(row['seconds'], 3)} | {row['n']} |"
            )
    return "\n".join(lines)


def write_report(path, report: dict, *, overwrite: bool = True, protect=()) -> None:
    """Write an :func:`evaluate` report as JSON (non-finite numbers refused), atomically."""
    write_text(path, json.dumps(report, indent=2, allow_nan=False) + "\n",
               overwrite=overwrite, protect=protect, what="JSON report")
