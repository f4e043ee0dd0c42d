"""Peak memory of a repair read lazily from a big stack in each format (issue 31).

Writes one stack of ``--sections`` x ``--size`` x ``--size`` uint8 (default 500 x 2048 x 2048:
2 GB) as a BigTIFF, an HDF5 dataset (chunks 1 x 256 x 256), a zarr array and a folder of TIFF
sections, then for each runs ``napari-flowinpaint repair INPUT -m MASK -o OUT.zarr --workers 1``
on 5 damaged sections (spread through it) under ``/usr/bin/time -v`` and records the peak
resident memory of the command (engine included) and its seconds. The outputs must be
identical across formats.

    .venv/bin/python benchmarks/bench_formats_memory.py              # ~10 GB of disk, minutes
    .venv/bin/python benchmarks/bench_formats_memory.py --sections 40 --size 1024   # quick

Writes ``benchmarks/results/bench_formats_memory.json`` (``--json`` elsewhere); the documentation's
*File formats* page takes its table from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

RESULTS = Path(__file__).resolve().parent / "results"


def damaged(sections: int) -> list[int]:
    """Five damaged sections spread through the stack (50, 150, ... 450 of 500)."""
    return sorted({int(round(f * sections)) for f in (0.1, 0.3, 0.5, 0.7, 0.9)})


def make_inputs(folder: Path, sections: int, size: int) -> dict[str, str]:
    """The same stack in every format, written a section at a time; {format: input path}."""
    import h5py
    import zarr

    rng = np.random.default_rng(0)
    base = (rng.random((size // 8, size // 8)) * 255).astype(np.float32)
    import cv2

    def section(z: int) -> np.ndarray:
        shift = np.float32([[1, 0, 0.5 * z], [0, 1, 0.3 * z]])
        big = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
        img = cv2.warpAffine(big, shift, (size, size), borderMode=cv2.BORDER_REFLECT)
        return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)

    paths = {"bigtiff": folder / "stack.tif", "hdf5": folder / "stack.h5",
             "zarr": folder / "stack.zarr", "folder": folder / "sections"}
    paths["folder"].mkdir()
    h5 = h5py.File(paths["hdf5"], "w")
    ds = h5.create_dataset("raw", (sections, size, size), np.uint8, chunks=(1, 256, 256))
    ds.attrs["resolution"] = [40.0, 4.0, 4.0]
    za = zarr.create_array(store=str(paths["zarr"]), shape=(sections, size, size),
                           dtype=np.uint8, chunks=(1, size, size))
    with tifffile.TiffWriter(paths["bigtiff"], bigtiff=True) as tif:
        for z in range(sections):
            s = section(z)
            tif.write(s, contiguous=True)
            ds[z] = s
            za[z] = s
            tifffile.imwrite(paths["folder"] / f"{z:04d}.tif", s)
    h5.close()
    mask = zarr.create_array(store=str(folder / "mask.zarr"), shape=(sections, size, size),
                             dtype=np.uint8, chunks=(1, size, size))  # empty chunks: zeros
    for z in damaged(sections):
        section_mask = np.zeros((size, size), np.uint8)
        section_mask[size // 4: size // 2, size // 3: 2 * size // 3] = 1
        mask[z] = section_mask
    return {"bigtiff": str(paths["bigtiff"]), "hdf5": f"{paths['hdf5']}:/raw",
            "zarr": str(paths["zarr"]), "folder": str(paths["folder"])}


def run(input_path: str, mask: Path, out: Path) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "napari_flowinpaint", "repair",
           input_path, "-m", str(mask), "-o", str(out), "--workers", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time.*: ([\d:.]+)", done.stderr).group(1)
    seconds = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
    return {"peak_rss_gb": rss_kb / 1024 ** 2, "seconds": seconds}


def digest(path: Path) -> str:
    import zarr

    arr = zarr.open_array(str(path), mode="r")
    h = hashlib.blake2b(digest_size=16)
    for z in range(arr.shape[0]):
        h.update(np.ascontiguousarray(arr[z]).tobytes())
    return h.hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sections", type=int, default=500)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--formats", nargs="+", default=["bigtiff", "hdf5", "zarr", "folder"])
    ap.add_argument("--json", type=Path, default=RESULTS / "bench_formats_memory.json")
    ap.add_argument("--tmp", type=Path, default=None, help="scratch folder (default: $TMPDIR)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fi-mem-", dir=args.tmp))
    try:
        inputs = make_inputs(work, args.sections, args.size)
        gb = args.sections * args.size ** 2 / 1024 ** 3
        rows = []
        for fmt in args.formats:
            out = work / f"out-{fmt}.zarr"
            r = run(inputs[fmt], work / "mask.zarr", out)
            r.update(format=fmt, input=inputs[fmt].replace(str(work) + "/", ""),
                     output_digest=digest(out))
            rows.append(r)
            print(f"{fmt:8s} peak {r['peak_rss_gb']:.2f} GB  {r['seconds']:.0f} s", flush=True)
        same = len({r["output_digest"] for r in rows}) == 1
        report = {"stack": [args.sections, args.size, args.size], "stack_gb": gb,
                  "damaged_sections": damaged(args.sections),
                  "identical_outputs": same, "rows": rows}
        args.json.write_text(json.dumps(report, indent=1))
        print(f"stack {gb:.2f} GB; outputs identical: {same}; wrote {args.json}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
