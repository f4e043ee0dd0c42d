"""Damage and repair a section of the bundled sample stack; write a figure and metrics.

``napari-flowinpaint demo [-o DIR] [--seed 0]`` loads the bundled FIB-SEM sample, damages its
middle section with a realistic mask (a fold/crack band across the section plus an
irregular blob, filled white as in FlowInpaint's simulated damage), repairs it with
:func:`~napari_flowinpaint.tasks.repair.repair_slice` and writes, into DIR:

* ``damaged.tif``, ``mask.tif``, ``repaired.tif``: the stacks (ImageJ TIFF, voxel size kept);
* ``demo.png``: neighbour above, damaged, repaired (textured, the default), repaired
  (faithful), ground truth, neighbour below;
* ``metrics.md``: PSNR, SSIM and the grain in the mask of the damaged section, both repairs and
  two baselines (the average of the two neighbours, OpenCV's Telea inpainting of the section
  alone), also printed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ...engine.files import atomic_output, check_output_path, write_text
from ..io import load_sample, write_stack
from ..repair import repair_slice
from ..simulation import apply_damage, random_mask
from . import metrics
from .baselines import method_average, method_telea

__all__ = ["DEMO_FILES", "run_demo", "demo_mask"]


def demo_mask(shape: tuple[int, int], *, seed: int = 0) -> np.ndarray:
    """The demo's damage: a fold/crack band across the section (8 % of it) and an irregular
    blob (5 %), drawn with :func:`~napari_flowinpaint.tasks.simulation.random_mask`.

    Parameters
    ----------
    shape : (H, W)
    seed : int, keyword-only
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same mask.

    Returns
    -------
    ndarray of bool, shape (H, W): True marks damaged pixels (about 12-13 % of them, less
    where the band and the blob overlap).
    """
    rng = np.random.default_rng(seed)
    band = random_mask(shape, 0.08, rng, kind="bands")
    blob = random_mask(shape, 0.05, rng, kind="blobs")
    return band | blob


def _scores(truth: np.ndarray, image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    rng = float(np.iinfo(truth.dtype).max) if truth.dtype.kind in "ui" else 1.0
    err = np.abs(truth.astype(np.float64) - image.astype(np.float64))[mask]
    return {
        "psnr": metrics.psnr(truth, image, data_range=rng),
        "ssim": metrics.ssim(truth, image, data_range=rng),
        "psnr_hole": metrics.psnr_hole(truth, image, mask, data_range=rng),
        "mae_hole": float(err.mean()),
        "grain": metrics.grain_ratio(truth, image, mask),
    }


def _table(rows: dict[str, dict[str, float]], caption: str) -> str:
    lines = [caption, "",
             "| section | PSNR (dB) | SSIM | PSNR in mask (dB) | mean abs. error in mask "
             "| grain in mask (truth = 1) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in rows.items():
        lines.append(f"| {name} | {s['psnr']:.2f} | {s['ssim']:.3f} | {s['psnr_hole']:.2f} | "
                     f"{s['mae_hole']:.1f} | {s['grain']:.2f} |")
    return "\n".join(lines) + "\n"


def _figure(path: Path, panels: list[tuple[str, np.ndarray]], footer: str, *,
            overwrite: bool) -> None:
    from matplotlib.figure import Figure  # a Figure of its own: no global state, no GUI

    n = len(panels)
    fig = Figure(figsize=(2.3 * n, 2.75), dpi=100)
    axes = fig.subplots(1, n)
    for ax, (title, img) in zip(axes, panels, strict=True):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.text(0.5, 0.02, footer, ha="center", va="bottom", fontsize=6.5, color="#444444")
    fig.subplots_adjust(left=0.005, right=0.995, top=0.88, bottom=0.09, wspace=0.03)
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png")


#: The files :func:`run_demo` writes into its folder.
DEMO_FILES = ("damaged.tif", "mask.tif", "repaired.tif", "demo.png", "metrics.md")


def run_demo(out_dir, *, seed: int = 0, verbose: bool = True, overwrite: bool = False) -> dict:
    """Run the demo (see the module docstring) and return what it measured.

    Parameters
    ----------
    out_dir : str or Path
        Folder for the outputs (:data:`DEMO_FILES`); created if needed.
    seed : int, keyword-only
        Seed of the damage mask.
    verbose : bool, keyword-only
        Print the metrics table.
    overwrite : bool, keyword-only
        Replace the demo's files left in ``out_dir`` by an earlier run; without it, an
        existing one is refused before any work.

    Returns
    -------
    dict with ``z`` (damaged section), ``damaged_fraction``, ``method``, ``scores``
    ({row name: {"psnr", "ssim", "psnr_hole", "mae_hole", "grain"}}), ``files`` (name -> Path) and
    ``seconds``.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{str(out)!r} exists and is not a folder; choose another one.")
    out.mkdir(parents=True, exist_ok=True)
    for name in DEMO_FILES:
        check_output_path(out / name, overwrite=overwrite, what="demo file")
    truth, info = load_sample()
    z = truth.shape[0] // 2
    mask = demo_mask(truth.shape[1:], seed=seed)
    damaged = truth.copy()
    damaged[z] = apply_damage(truth[z], mask)
    masks = np.zeros(truth.shape, np.uint8)
    masks[z] = mask

    from ...engine import FlowInpainter

    engine = FlowInpainter()  # the default: textured
    section, report = repair_slice(damaged, z, mask, masks=masks, inpainter=engine,
                                   return_report=True)
    faithful = repair_slice(damaged, z, mask, masks=masks,
                            inpainter=FlowInpainter(mode="faithful"))
    repaired = damaged.copy()
    repaired[z] = section

    rows = {"damaged (filled white)": _scores(truth[z], damaged[z], mask)}
    for name, method in (("average of neighbours", method_average),
                         ("Telea (OpenCV)", method_telea)):
        img = method(damaged[z - 1], damaged[z], damaged[z + 1], mask)
        rows[name] = _scores(truth[z], np.where(mask, img, damaged[z]), mask)
    rows[f"**FlowInpaint ({engine.method}, textured)**"] = _scores(truth[z], section, mask)
    rows[f"FlowInpaint ({engine.method}, faithful)"] = _scores(truth[z], faithful, mask)
    caption = (f"Section z={z} of the bundled sample ({info['description']}; voxel "
               f"{'x'.join(f'{v:g}' for v in info['voxel_size'])} nm), "
               f"{100 * mask.mean():.1f} % of it damaged (seed {seed}). Metrics against the "
               "undamaged section; SSIM with a 7-pixel window.")
    table = _table(rows, caption)

    vs = info["voxel_size"]
    files = {}
    for name, data in (("damaged", damaged), ("mask", masks), ("repaired", repaired)):
        files[name] = write_stack(out / f"{name}.tif", data, overwrite=overwrite,
                                  voxel_size=vs)
    files["figure"] = out / "demo.png"
    tex = rows[f"**FlowInpaint ({engine.method}, textured)**"]
    fai = rows[f"FlowInpaint ({engine.method}, faithful)"]
    _figure(files["figure"], [
        (f"neighbour above (z={z - 1})", truth[z - 1]),
        (f"damaged (z={z}, {100 * mask.mean():.0f} %)", damaged[z]),
        (f"textured ({tex['psnr_hole']:.1f} dB, grain {tex['grain']:.2f})", section),
        (f"faithful ({fai['psnr_hole']:.1f} dB, grain {fai['grain']:.2f})", faithful),
        ("ground truth", truth[z]),
        (f"neighbour below (z={z + 1})", truth[z + 1]),
    ], footer="Sample: Janelia FlyEM NeuroProof examples, CC BY 3.0 (Parag et al. 2015), "
                    "cropped and subsampled.", overwrite=overwrite)
    files["metrics"] = out / "metrics.md"
    write_text(files["metrics"], "# napari-flowinpaint demo\n\n" + table
               + f"\nData: {info['attribution']}\n", overwrite=overwrite)
    seconds = time.perf_counter() - t0
    if verbose:
        print(table)
        print(f"wrote {', '.join(str(p) for p in files.values())} in {seconds:.1f} s")
    return {"z": z, "damaged_fraction": float(mask.mean()), "method": report.method,
            "scores": rows, "files": files, "seconds": seconds}
