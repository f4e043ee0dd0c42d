"""Screenshots of the two dock widgets at work, for the README (``make screenshots``).

Opens a real napari window (under Xvfb when there is no display: ``xvfb-run -a``), loads the
bundled FIB-SEM sample, paints a damaged region, repairs it, shows the confidence overlay,
and runs a short fine-tuning; each step is saved as a PNG in ``docs/images/``.

    xvfb-run -a .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_flowinpaint.gui import FinetuneWidget, RepairWidget
from napari_flowinpaint.tasks.io.sample import load_sample

OUT = Path(__file__).resolve().parent / "images"
Z = 8


def settle(widget=None, timeout: float = 300.0) -> None:
    """Run the Qt event loop until ``widget`` is idle (and a little more, for drawing)."""
    app = QApplication.instance()
    t0 = time.perf_counter()
    while widget is not None and widget.running and time.perf_counter() - t0 < timeout:
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)


def shoot(viewer, name: str) -> None:
    settle()
    viewer.screenshot(str(OUT / name), canvas_only=False, flash=False)
    print("wrote", OUT / name)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    stack, info = load_sample()
    damaged = stack.copy()
    hole = np.zeros(stack.shape[1:], bool)
    yy, xx = np.mgrid[: stack.shape[1], : stack.shape[2]]
    hole |= (yy - 90) ** 2 / 40 ** 2 + (xx - 100) ** 2 / 25 ** 2 < 1
    hole |= np.abs(yy - 0.6 * xx - 20) < 4
    damaged[Z][hole] = 255

    viewer = napari.Viewer(title="napari-flowinpaint")
    viewer.window._qt_window.resize(1280, 820)
    image = viewer.add_image(damaged, name="em", scale=info["voxel_size"])
    repair = RepairWidget(viewer)
    dock = viewer.window.add_dock_widget(repair, name="Repair section")
    viewer.dims.set_point(0, Z * info["voxel_size"][0])
    mask = repair.new_mask()
    mask.data[Z][hole] = 1
    mask.refresh()
    shoot(viewer, "repair-painted.png")

    repair.repair_current_slice()
    settle(repair)
    shoot(viewer, "repair-result.png")

    repair["show_confidence"].value = True
    shoot(viewer, "repair-confidence.png")

    viewer.layers.remove(mask)
    repair["show_confidence"].value = False
    viewer.window.remove_dock_widget(dock)
    finetune = FinetuneWidget(viewer, score_samples=2)
    viewer.window.add_dock_widget(finetune, name="Fine-tune weights")
    finetune.image_layer = image
    finetune["iterations"].value = 40
    with tempfile.TemporaryDirectory() as tmp:
        finetune["output_file"].value = Path(tmp) / "my-stack.safetensors"
        finetune.start()
        settle(finetune, timeout=900)
        shoot(viewer, "finetune.png")
    viewer.close()


if __name__ == "__main__":
    main()
