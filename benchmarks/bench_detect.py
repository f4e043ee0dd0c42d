"""Speed of damage detection: seconds per slice for 1024^2 and 2048^2 sections.

Run from the repository root (nothing else running, for meaningful figures)::

    .venv/bin/python benchmarks/bench_detect.py
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import tifffile
import torch

from napari_flowinpaint.tasks.detection import detect_damage
from napari_flowinpaint.tasks.simulation import simulate_damage

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "napari_flowinpaint" / "data" / \
    "fibsem_medulla_sample.tif"


def main() -> None:
    torch.set_num_threads(2)
    sample = tifffile.imread(SAMPLE)
    for side in (1024, 2048):
        stack = np.stack([cv2.resize(s, (side, side), interpolation=cv2.INTER_CUBIC)
                          for s in sample[:8]])
        stack[1], _ = simulate_damage(stack[1], "hole", 0)
        detect_damage(stack, 1)  # warm-up: loads the network
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            detect_damage(stack, 1)
            times.append(time.perf_counter() - t0)
        whole = []
        t0 = time.perf_counter()
        detect_damage(stack)
        whole.append((time.perf_counter() - t0) / len(stack))
        print(f"{side}x{side}: one slice with its neighbours {np.median(times):.3f} s "
              f"(median of 5); whole stack {whole[0]:.3f} s per slice")


if __name__ == "__main__":
    main()
