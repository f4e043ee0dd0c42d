"""Scoring weights on the held-out sections of a fine-tuning, and keeping the starting score.

:func:`score_weights` repairs simulated damage of the held-out sections with some weights
(:func:`~napari_flowinpaint.tasks.evaluation.evaluate`, ``per_sample=True``) and gives the
PSNR in the hole of every test repair; the same seed gives the very same test repairs, so two
weights' lists pair up one to one.

:func:`starting_scores` scores the starting weights only once for the same held-out sections
(by content), starting weights (by file content), spacing, samples and seed: the scores are
kept in memory and in ``start_score.json`` of the run folder, and reused.

One of those test repairs, fixed beforehand (:data:`EXAMPLE`: the first at 30 % damage, not
picked by its score), is kept whole as the visual before/after check
(:class:`RepairExample`, from :func:`repair_example`): the truth, the damaged crop, the mask
and the repairs with both weights, as scored. The starting weights' one is kept with their
score (``start_example.npz``), so a reused score needs no repair either.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import __version__
from ...engine import FlowInpainter, bundled_weights_path
from ...engine.files import atomic_output, write_text
from ..evaluation.repair import evaluate
from ..fingerprints import combine_digests, file_digest, section_digest
from .common import RUN_FILES

__all__ = ["EXAMPLE", "RATIOS", "START_EXAMPLE_FILE", "START_SCORE_FILE", "RepairExample",
           "repair_example", "score_weights", "starting_scores"]

#: Damaged fractions of the test repairs.
RATIOS = (0.1, 0.3, 0.5)
#: The test repair kept as the before/after example: (index in :data:`RATIOS`, sample).
EXAMPLE = (1, 0)
#: The starting weights' scores, and their example repair, in the run folder.
START_SCORE_FILE = "start_score.json"
START_EXAMPLE_FILE = "start_example.npz"
_MEMORY: dict[str, dict] = {}  # key digest -> scores (with their "example"), for this process
_ARRAYS = ("truth", "damaged", "mask", "repaired")


@dataclass
class RepairExample:
    """One held-out test repair with the starting and the fine-tuned weights.

    Attributes
    ----------
    z, y, x : int
        The held-out section and the top-left corner of the crop in it.
    truth, damaged : ndarray, shape (h, w)
        The true crop, and the crop with the simulated damage (white) the repairs were given.
    mask : ndarray of bool, shape (h, w)
        The simulated damage (True = damaged).
    before, after : ndarray, shape (h, w), or None
        The repairs with the starting and the fine-tuned weights (known pixels kept), as
        scored; None when that score was not made.
    psnr_before, psnr_after : float or None
        Their PSNR in the hole (dB), as they count in the verdict.
    """

    z: int
    y: int
    x: int
    truth: np.ndarray
    damaged: np.ndarray
    mask: np.ndarray
    before: np.ndarray | None
    after: np.ndarray | None
    psnr_before: float | None
    psnr_after: float | None


def _position(samples: int) -> int:
    return EXAMPLE[0] * int(samples) + EXAMPLE[1]


def repair_example(before: dict, after: dict | None = None) -> RepairExample | None:
    """The :class:`RepairExample` of two :func:`score_weights` results (the same test
    repairs), or of the starting one alone; None when ``before`` kept none."""
    seen = before.get("example")
    if seen is None:
        return None
    i = _position(len(before["psnr_hole"]) // len(RATIOS))
    done = None if after is None else after.get("example")
    return RepairExample(int(seen["z"]), int(seen["y"]), int(seen["x"]), seen["truth"],
                         seen["damaged"], seen["mask"], seen["repaired"],
                         None if done is None else done["repaired"],
                         before["psnr_hole"][i],
                         None if after is None else after["psnr_hole"][i])


def score_weights(stack, weights, z_range, spacing: int, samples: int, seed: int,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """``{"z": [...], "psnr_hole": [...], "example": {...}}``: the damaged section and the
    PSNR in the hole (dB; None where not finite) of every test repair of ``z_range`` with
    ``weights``, and the :data:`EXAMPLE` test repair's crops (``z``, ``y``, ``x``,
    ``truth``, ``damaged``, ``mask``, ``repaired``)."""
    engine = FlowInpainter(weights=weights, device="cpu")
    h, w = stack.shape[1:]
    kept = {}

    def keep(info):
        if (info["ratio"], info["index"]) == (RATIOS[EXAMPLE[0]], EXAMPLE[1]):
            kept.update({k: info[k] for k in ("z", "y", "x")},
                        **{k: np.array(info[k]) for k in _ARRAYS[:3]},
                        repaired=np.array(info["repaired"]["engine"]))

    rep = evaluate(stack, spacing=spacing, z_range=z_range, crop=min(256, h, w),
                   samples=samples, ratios=RATIOS, seed=seed,
                   methods={"engine": engine.inpaint}, per_sample=True, progress=progress,
                   on_sample=keep, metrics_only=("psnr_hole",))
    rows = rep["results"]["engine"].values()
    return {"z": [z for r in rows for z in r["per_sample"]["z"]],
            "psnr_hole": [v for r in rows for v in r["per_sample"]["psnr_hole"]],
            "example": kept or None}


def _read_example(path: Path, name: str) -> dict | None:
    """The example kept in ``path`` for the scores ``name``, or None."""
    try:
        with np.load(path, allow_pickle=False) as kept:
            if str(kept["key"]) != name:
                return None
            return {k: (kept[k] if k in _ARRAYS else int(kept[k]))
                    for k in (*_ARRAYS, "z", "y", "x")}
    except (OSError, ValueError, KeyError):
        return None


def _write_example(path: Path, name: str, example: dict) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, key=np.array(name), **example)
    with atomic_output(path, what="starting example") as tmp:
        tmp.write_bytes(buffer.getvalue())


def _key(stack, weights, z_range, spacing, samples, seed) -> dict:
    path = bundled_weights_path() if weights is None else Path(weights)
    if path is not None and not path.is_file():
        path = path.with_suffix(".safetensors")
    return {"sections": combine_digests(section_digest(stack[z]) for z in range(*z_range)),
            "weights": "bundled" if weights is None else str(weights),
            "weights_digest": None if path is None or not path.is_file() else file_digest(path),
            "z_range": list(z_range), "spacing": int(spacing), "samples": int(samples),
            "seed": int(seed), "ratios": list(RATIOS), "version": __version__}


def starting_scores(stack, weights, z_range, spacing: int, samples: int, seed: int,
                    run_dir, progress=None) -> tuple[dict, bool]:
    """The starting weights' :func:`score_weights`, and whether they were reused.

    Reused from this process or from ``run_dir/start_score.json`` when everything they
    depend on is the same (the held-out sections' content, the weights file's content,
    ``z_range``, ``spacing``, ``samples``, ``seed`` and the package version); otherwise
    scored and kept for the next run, with their example repair (``start_example.npz``). A
    missing or unreadable file (either) only means scoring again.
    """
    key = _key(stack, weights, z_range, spacing, samples, seed)
    name = combine_digests(json.dumps(key, sort_keys=True).split(","))
    path = Path(run_dir) / START_SCORE_FILE
    pictured = path.with_name(START_EXAMPLE_FILE)
    scores = _MEMORY.get(name)
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        example = _read_example(pictured, name)
        if (kept.get("key") == key and len(kept["scores"]["psnr_hole"]) == 3 * samples
                and example is not None):
            scores = _MEMORY[name] = {**kept["scores"], "example": example}
            return scores, True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    reused = scores is not None
    if not reused:
        scores = _MEMORY[name] = score_weights(stack, weights, z_range, spacing, samples,
                                               seed, progress)
    try:  # kept in the run folder too (never in a folder of the user's own files)
        path.parent.mkdir(parents=True, exist_ok=True)
        if all(p.name in RUN_FILES or p.name.startswith(".") for p in path.parent.iterdir()):
            if scores.get("example") is not None:
                _write_example(pictured, name, scores["example"])
            plain = {k: v for k, v in scores.items() if k != "example"}
            write_text(path, json.dumps({"key": key, "scores": plain}, indent=1) + "\n",
                       what="starting score")
    except OSError:  # a read-only place: the score is still kept in memory
        pass
    return scores, reused
