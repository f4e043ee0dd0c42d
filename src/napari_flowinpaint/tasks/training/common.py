"""What every trainer shares: training stacks, checkpoints with exact resume, the loss log
and its plot, the learning-rate schedule.

A run lives in one folder. ``checkpoint.pt`` holds the networks, optimisers, step and every
random state, saved with plain tensors and strings only, so it loads with
``torch.load(..., weights_only=True)`` (no pickle) and a resumed run continues exactly as an
uninterrupted one. ``losses.csv`` is cut back to the checkpoint's step on resume.
"""

from __future__ import annotations

import csv
import errno
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...engine.files import atomic_output, write_text

__all__ = ["SHARED_DATA", "TrainSource", "prepare_run_folder", "default_sources",
           "parse_source", "load_sources",
           "save_rng_state", "restore_rng_state", "save_checkpoint", "load_checkpoint",
           "LossLog", "plot_losses", "cosine_lr", "psnr_masked", "Stopped",
           "weights_file", "weights_output", "publish_weights", "phase_reporter", "held_out_split",
           "marked_sections", "MOSTLY_MARKED", "RUN_FILES"]

#: A section whose painted damage covers more than this share is not trained on at all.
MOSTLY_MARKED = 0.5

#: The development data beside a checkout (``../shared/data``).
SHARED_DATA = Path(__file__).resolve().parents[4].parent / "shared" / "data"


class Stopped(Exception):
    """Raised inside a long step (scoring weights) when its ``should_stop`` says so."""


def weights_file(out) -> Path:
    """The weights file written for the output ``out``: ``out`` itself when it ends in
    ``.safetensors``, else ``out`` with ``.safetensors`` added (``w`` -> ``w.safetensors``)."""
    out = Path(out)
    return out if out.suffix == ".safetensors" else out.with_name(out.name + ".safetensors")


def weights_output(out, *, overwrite: bool, protect, what: str) -> tuple[Path, Path]:
    """The fine-tuned weights file (:func:`weights_file`) and its run folder
    (``<name>.run``), after checking that the file and its ``.json`` may be written.

    Raises
    ------
    ValueError
        When ``out`` itself is one of ``protect`` (the stack's or the mask's file: a
        weights file would otherwise be written beside it, named after it), or the files
        written would be.
    """
    from ...engine.files import check_output_path, same_or_nested

    given, out = Path(out), weights_file(out)
    for p in protect:
        if p is not None and given != out and same_or_nested(given, Path(p)):
            raise ValueError(
                f"the {what} {str(given)!r} is the input {str(p)!r}: give the weights a "
                f"file of their own, e.g. {str(given.with_suffix('.safetensors'))!r} (an "
                "output without the .safetensors suffix gets it added).")
    for path in (out, out.with_suffix(".json")):
        check_output_path(path, overwrite=overwrite, protect=protect, what=what)
    return out, out.with_name(out.stem + ".run")


def publish_weights(trained, out: Path, *, overwrite: bool, protect, what: str) -> None:
    """Copy a run's weights (``trained`` ``.safetensors`` + ``.json``) to ``out``, each file
    written atomically."""
    import shutil

    for suffix in (".safetensors", ".json"):
        with atomic_output(out.with_suffix(suffix), overwrite=overwrite, protect=protect,
                           what=what) as tmp:
            shutil.copyfile(Path(trained).with_suffix(suffix), tmp)


def held_out_split(shape, spacing, iterations, held_out, *, doing: str) -> tuple[int, int, int]:
    """Check a fine-tuning's stack shape and options; ``(spacing, iterations, split)``, where
    sections ``split`` and after are held out (``held_out`` of them, at least one triplet).
    ``doing`` names the work in the errors (e.g. ``"fine-tune"``)."""
    shape = tuple(shape)
    if len(shape) != 3:
        raise ValueError(f"expected a 3-D stack (z, y, x), got shape {shape}.")
    spacing, iterations = int(spacing), int(iterations)
    if spacing < 1 or iterations < 1:
        raise ValueError(f"spacing and iterations must be >= 1, got {spacing}, {iterations}.")
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be a fraction in (0, 1), got {held_out}.")
    nz = shape[0]
    split = nz - max(2 * spacing + 1, int(math.ceil(held_out * nz)))
    if split < 2 * spacing + 1:
        raise ValueError(
            f"a stack of {nz} sections is too short to {doing} with spacing {spacing}: "
            f"need at least {2 * (2 * spacing + 1)} sections (training + held-out).")
    return spacing, iterations, split


def marked_sections(damaged, shape) -> tuple[list[int], list[int]]:
    """Sections with painted damage, and those painted over more than
    :data:`MOSTLY_MARKED` of their area, from a mask stack (nonzero = damaged; read one
    section at a time) or a list of section indices (each counted as wholly damaged)."""
    nz = shape[0]
    if damaged is None:
        return [], []
    if len(np.shape(damaged)) == 3:
        if tuple(np.shape(damaged)) != tuple(shape):
            raise ValueError(f"the damage mask has shape {tuple(np.shape(damaged))}; expected "
                             f"the stack's {tuple(shape)}.")
        share = [float(np.count_nonzero(np.asarray(damaged[z]))) / float(np.prod(shape[1:]))
                 for z in range(nz)]
        return ([z for z in range(nz) if share[z] > 0],
                [z for z in range(nz) if share[z] > MOSTLY_MARKED])
    zs = sorted({int(z) % nz for z in np.ravel(damaged)})
    return zs, zs


def phase_reporter(callback, name: str):
    """``progress(done, total)`` that reports ``{"phase": name, "step", "total"}`` to
    ``callback`` (None without a callback)."""
    if callback is None:
        return None
    return lambda done, total: callback({"phase": name, "step": done, "total": total})


@dataclass(frozen=True)
class TrainSource:
    """A stack to draw training triplets from.

    Attributes
    ----------
    path : str
        TIFF or zarr stack (z, y, x).
    z_range : (int, int)
        Sections ``start <= z < stop`` that may be used (neighbours included).
    spacings : tuple of int
        Neighbour distances to draw from, on each side independently (an isotropic FIB-SEM
        stack mimics serial sections with distances of 3-5 slices).
    weight : float
        Relative sampling frequency.
    skip : tuple of int
        Sections never used in a triplet (e.g. those the user marked as damaged).
    """

    path: str
    z_range: tuple[int, int] = (0, 1 << 30)
    spacings: tuple[int, ...] = (1,)
    weight: float = 1.0
    skip: tuple[int, ...] = ()


def default_sources(root=None) -> list[TrainSource]:
    """The training data of the bundled weights: isbi2012_train (all 30 sections, spacing 1)
    and fibsem_medulla_ts1 z < 200 (spacings 2-6). isbi2012_test and fibsem z >= 200 are the
    validation sets and are never trained on."""
    root = Path(root) if root is not None else SHARED_DATA
    return [
        TrainSource(str(root / "isbi2012_train" / "raw.tif"), (0, 30), (1,), 1.0),
        TrainSource(str(root / "fibsem_medulla_ts1" / "raw.tif"), (0, 200), (2, 3, 4, 5, 6),
                    1.0),
    ]


def parse_source(text: str) -> TrainSource:
    """A :class:`TrainSource` from ``STACK[:Z0:Z1[:S,S..[:K,K..]]]`` (the ``--data``
    syntax): sections ``Z0 <= z < Z1``, neighbour spacings ``S``, sections ``K`` skipped
    (real defects: never used as clean tissue)."""
    parts = text.split(":")
    path = parts[0]
    z = (int(parts[1] or 0), int(parts[2] or 1 << 30)) if len(parts) >= 3 else (0, 1 << 30)
    sp = tuple(int(v) for v in parts[3].split(",")) if len(parts) >= 4 else (1,)
    skip = tuple(int(v) for v in parts[4].split(",") if v) if len(parts) >= 5 else ()
    return TrainSource(path, z, sp, skip=skip)


def load_sources(sources: Sequence[TrainSource]) -> list[tuple[np.ndarray, TrainSource]]:
    """Open each source's stack: ``[(array (Z, H, W), source), ...]``; in memory when small
    (:func:`~napari_flowinpaint.tasks.io.load_if_small`), else lazy (read a crop at a
    time)."""
    from ..io import load_if_small, read_stack

    return [(load_if_small(read_stack(src.path, name="training stack")), src)
            for src in sources]


#: What a run writes into its folder (:func:`prepare_run_folder`): a folder holding only
#: these (and hidden files) is a run's, even without a checkpoint (one that failed, e.g. on
#: a full disk, before its first).
RUN_FILES = frozenset({"checkpoint.pt", "losses.csv", "validation.csv", "losses.png",
                       "weights.safetensors", "weights.json", "detector.safetensors",
                       "detector.json", "start_score.json", "start_example.npz"})


def prepare_run_folder(out_dir, *, overwrite: bool = False) -> Path:
    """Create a run folder, or check that an existing one is a run to resume.

    A run folder holds only what a run writes (``checkpoint.pt``, logs, weights:
    :data:`RUN_FILES`). An existing folder is taken when it holds a ``checkpoint.pt`` (the
    run resumes), nothing, or only what a run writes (a run that stopped before its first
    checkpoint, e.g. on a full disk: it starts again); a folder holding other files is
    refused unless ``overwrite``, so that a run never writes its logs and weights over
    somebody's files.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"the run folder {str(out)!r} is a file; choose a folder path.")
    if out.is_dir() and not (out / "checkpoint.pt").is_file() and not overwrite and any(
            p.name not in RUN_FILES and not p.name.startswith(".") for p in out.iterdir()):
        raise FileExistsError(
            f"the folder {str(out)!r} holds files that a run does not write and no "
            "checkpoint.pt, so it is not a run to resume; choose a new or empty folder (or "
            "pass overwrite=True, --overwrite, to write the run's files into it)."
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_rng_state(state: dict) -> dict:
    """numpy bit-generator state with its big ints as strings (``weights_only`` loading)."""
    return {k: (save_rng_state(v) if isinstance(v, dict) else str(v)) for k, v in state.items()}


def restore_rng_state(state: dict) -> dict:
    """The inverse of :func:`save_rng_state`."""
    out = {}
    for k, v in state.items():
        if isinstance(v, dict):
            out[k] = restore_rng_state(v)
        elif k == "bit_generator":
            out[k] = v
        else:
            out[k] = int(v)
    return out


def save_checkpoint(path, parts: Mapping, rng: np.random.Generator, **values) -> None:
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : Path
        ``checkpoint.pt`` of the run.
    parts : mapping of str to object with ``state_dict()``
        Networks, optimisers, schedulers, saved under their keys.
    rng : numpy.random.Generator
        The sampler's generator (with torch's global generator, saved too).
    **values
        Plain numbers to keep (step, wall time...).
    """
    state = {name: part.state_dict() for name, part in parts.items()}
    state.update(rng=save_rng_state(rng.bit_generator.state),
                 torch_rng=torch.get_rng_state(), **values)
    with atomic_output(path, what="checkpoint") as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as exc:  # torch's own writer says "file write failed"
            if "write" not in str(exc).lower():
                raise
            raise OSError(errno.EIO, "the data could not be written", str(tmp)) from exc


def load_checkpoint(path, parts: Mapping, rng: np.random.Generator) -> dict | None:
    """Restore what :func:`save_checkpoint` wrote into ``parts`` and ``rng`` (and torch's
    generator); returns the checkpoint's dict, or None when there is none at ``path``."""
    path = Path(path)
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)  # no pickle
    for name, part in parts.items():
        part.load_state_dict(state[name])
    rng.bit_generator.state = restore_rng_state(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    return state


class LossLog:
    """A run's ``losses.csv``: one row per logged step, the step in the first column.

    A fresh run (``resume_step`` 0, or no file) starts the file with its header; a resumed
    run drops the rows logged after the checkpoint it resumes from, so the log matches an
    uninterrupted run.
    """

    def __init__(self, path, fields: Sequence[str], *, resume_step: int = 0):
        self.path = Path(path)
        self.fields = list(fields)
        if resume_step == 0 or not self.path.exists():
            write_text(self.path, ",".join(self.fields) + "\n")
        else:
            with open(self.path, newline="") as fh:
                rows = list(csv.reader(fh))
            keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= resume_step]
            write_text(self.path, "".join(",".join(r) + "\n" for r in keep))

    def append(self, values: Sequence) -> None:
        """Add one row (values in the order of the fields)."""
        with open(self.path, "a", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerow(values)


def plot_losses(csv_path, png_path) -> None:
    """Plot every loss column of a :class:`LossLog` against the step, to a PNG (atomically).

    Drawn on a :class:`matplotlib.figure.Figure`, never through pyplot: safe from a worker
    thread inside napari, and it leaves matplotlib's backend alone.
    """
    from matplotlib.figure import Figure

    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    keys = [k for k in rows[0] if k not in ("step", "stage", "seconds", "lr")]
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    steps = np.array([int(r["step"]) for r in rows])
    for k in keys:
        v = np.array([float(r[k]) if r[k] not in ("", "nan") else np.nan for r in rows])
        if np.isfinite(v).any():
            ax.plot(steps, v, label=k, lw=1)
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_output(png_path, what="loss plot") as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def cosine_lr(base: float, step: int, total: int) -> float:
    """Constant for the first 60 % of a stage, then cosine decay to 5 %."""
    t = step / max(1, total)
    if t < 0.6:
        return base
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (t - 0.6) / 0.4)))


def psnr_masked(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> float:
    """PSNR (dB) over the masked pixels of a whole batch of unit-range images."""
    from ..evaluation.metrics import psnr_from_mse

    mse = (((a - b) ** 2) * m).sum() / m.sum().clamp_min(1)
    return psnr_from_mse(float(mse), 1.0)
