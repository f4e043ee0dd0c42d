"""Scoring weights on the held-out sections of a fine-tuning, and keeping the starting score.

:func:`score_weights` repairs simulated damage of the held-out sections with some weights
(:func:`~napari_flowinpaint.tasks.evaluation.evaluate`, ``per_sample=True``) and gives the
PSNR in the hole of every test repair; the same seed gives the very same test repairs, so two
weights' lists pair up one to one.

:func:`starting_scores` scores the starting weights only once for the same held-out sections
(by content), starting weights (by file content), spacing, samples and seed: the scores are
kept in memory and in ``start_score.json`` of the run folder, and reused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ... import __version__
from ...engine import FlowInpainter, bundled_weights_path
from ...engine.files import write_text
from ..evaluation.repair import evaluate
from ..fingerprints import combine_digests, file_digest, section_digest
from .common import RUN_FILES

__all__ = ["RATIOS", "START_SCORE_FILE", "score_weights", "starting_scores"]

#: Damaged fractions of the test repairs.
RATIOS = (0.1, 0.3, 0.5)
#: The starting weights' scores in the run folder.
START_SCORE_FILE = "start_score.json"
_MEMORY: dict[str, dict] = {}  # key digest -> scores, for this process


def score_weights(stack, weights, z_range, spacing: int, samples: int, seed: int,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """``{"z": [...], "psnr_hole": [...]}``: the damaged section and the PSNR in the hole
    (dB; None where not finite) of every test repair of ``z_range`` with ``weights``."""
    engine = FlowInpainter(weights=weights, device="cpu")
    h, w = stack.shape[1:]
    rep = evaluate(stack, spacing=spacing, z_range=z_range, crop=min(256, h, w),
                   samples=samples, ratios=RATIOS, seed=seed,
                   methods={"engine": engine.inpaint}, per_sample=True, progress=progress)
    rows = rep["results"]["engine"].values()
    return {"z": [z for r in rows for z in r["per_sample"]["z"]],
            "psnr_hole": [v for r in rows for v in r["per_sample"]["psnr_hole"]]}


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
    scored and kept for the next run. A missing or unreadable file only means scoring again.
    """
    key = _key(stack, weights, z_range, spacing, samples, seed)
    name = combine_digests(json.dumps(key, sort_keys=True).split(","))
    path = Path(run_dir) / START_SCORE_FILE
    scores = _MEMORY.get(name)
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if kept.get("key") == key and len(kept["scores"]["psnr_hole"]) == 3 * samples:
            scores = _MEMORY[name] = kept["scores"]
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
            write_text(path, json.dumps({"key": key, "scores": scores}, indent=1) + "\n",
                       what="starting score")
    except OSError:  # a read-only place: the score is still kept in memory
        pass
    return scores, reused
