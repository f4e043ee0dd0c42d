"""Build the bundled sample stack ``src/napari_flowinpaint/data/fibsem_medulla_sample.tif``.

Source: ``../shared/data/fibsem_medulla_ts1/raw.tif`` (FIB-SEM, Drosophila medulla, 10 nm
isotropic voxels; Janelia FlyEM NeuroProof examples, training_sample1, CC BY 3.0; see its
PROVENANCE.md). Every 4th slice from z = 0 is kept, so neighbouring sections of the sample are
40 nm apart, as in serial-section EM; only slices with z < 200 are ever used (z >= 200 is held
out for evaluation). The 192 x 192 crop with the strongest mean gradient (the most membranes
and organelles) is chosen on a grid of 8-pixel steps.

Run from the repository root::

    .venv/bin/python benchmarks/make_sample_data.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from napari_flowinpaint.tasks.io import SAMPLE_INFO, sample_path, write_stack

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "fibsem_medulla_ts1" / "raw.tif"
STEP, N_SLICES, SIZE, Z_LIMIT = 4, 16, 192, 200
MAX_BYTES = 600_000


def structure_score(sub: np.ndarray, size: int, grid: int = 8):
    """Mean gradient magnitude of every ``size`` x ``size`` window on a ``grid`` (y, x) lattice;
    returns ``(score, y, x)`` of the best window."""
    grad = np.zeros(sub.shape[1:], np.float64)
    for section in sub.astype(np.float64):
        grad += np.hypot(ndi.sobel(section, 0), ndi.sobel(section, 1))
    best = (-1.0, 0, 0)
    for y in range(0, sub.shape[1] - size + 1, grid):
        for x in range(0, sub.shape[2] - size + 1, grid):
            score = float(grad[y:y + size, x:x + size].mean()) / len(sub)
            best = max(best, (score, y, x))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--output", type=Path, default=sample_path())
    args = parser.parse_args(argv)
    if not args.source.exists():
        raise SystemExit(f"error: the source stack {args.source} is missing (see "
                         "../shared/data/README.md).")
    with tifffile.TiffFile(args.source) as tif:
        spacing = float(tif.imagej_metadata["spacing"])
        zs = list(range(0, Z_LIMIT, STEP))[:N_SLICES]
        sub = np.stack([tif.pages[z].asarray() for z in zs])
    assert spacing == 10.0 and max(zs) < Z_LIMIT
    score, y, x = structure_score(sub, SIZE)
    crop = np.ascontiguousarray(sub[:, y:y + SIZE, x:x + SIZE])
    assert crop.dtype == np.uint8
    info_text = (
        f"{SAMPLE_INFO['name']}: FIB-SEM Drosophila medulla, source slices z={zs[0]}..{zs[-1]} "
        f"step {STEP}, crop y={y}:{y + SIZE}, x={x}:{x + SIZE} of {args.source.name}. "
        f"{SAMPLE_INFO['attribution']}"
    )
    write_stack(args.output, crop, overwrite=True, voxel_size=(spacing * STEP, spacing, spacing),
                compression="zlib", description=info_text)
    size = args.output.stat().st_size
    print(f"wrote {args.output} shape {crop.shape} {crop.dtype}, {size / 1000:.0f} kB; source "
          f"z={zs[0]}..{zs[-1]} step {STEP}, crop y={y}, x={x} (mean gradient {score:.1f})")
    if size > MAX_BYTES:
        raise SystemExit(f"error: {size} bytes is over the {MAX_BYTES}-byte budget.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
