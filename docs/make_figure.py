"""The figure of the "How it works" page: each stage of FlowInpaint on the bundled sample.

    .venv/bin/python docs/make_figure.py          # writes docs/images/stages.png

Panels: the neighbour above, the damaged section (mask outlined), the initial reference
(optical flow, Eq. 1-3), the refined reference (flow network, Eq. 4-6), the guided
inpainting (textured, the default), the truth and the neighbour below. The same section and
mask as ``make demo``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from skimage.segmentation import find_boundaries

from napari_flowinpaint import FlowInpainter
from napari_flowinpaint.tasks.evaluation import demo_mask
from napari_flowinpaint.tasks.io import load_sample
from napari_flowinpaint.tasks.simulation import apply_damage

OUT = Path(__file__).resolve().parent / "images" / "stages.png"


def main() -> int:
    truth, _ = load_sample()
    z = truth.shape[0] // 2
    mask = demo_mask(truth.shape[1:], seed=0)
    damaged = apply_damage(truth[z], mask)
    above, below = truth[z - 1], truth[z + 1]
    panels = [("neighbour above", above)]
    shown = np.stack([damaged] * 3, axis=-1).astype(np.uint8)
    shown[find_boundaries(mask, mode="outer")] = (255, 60, 60)
    panels.append(("damaged (mask outlined)", shown))
    for title, stages in (("1. initial reference\n(optical flow, Eq. 1-3)", "initial_reference"),
                          ("2. refined reference\n(flow network, Eq. 4-6)", "refined_reference"),
                          ("3. guided inpainting\n(generator, Eq. 7-12)", "guided_inpainting")):
        engine = FlowInpainter(stages=stages)
        panels.append((title, engine.inpaint(above, damaged, below, mask)))
    panels += [("truth", truth[z]), ("neighbour below", below)]
    fig = Figure(figsize=(2.0 * len(panels), 2.6), dpi=100)
    for ax, (title, img) in zip(fig.subplots(1, len(panels)), panels, strict=True):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.subplots_adjust(left=0.005, right=0.995, top=0.8, bottom=0.01, wspace=0.03)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, format="png")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
