"""Screenshots of the dock widgets at work, for the napari tutorial (``make screenshots``).

Opens a real napari window of a laptop screen's size (1366 x 768; under Xvfb when there is
no display: ``xvfb-run -a``), loads the bundled FIB-SEM sample, paints a damaged region,
repairs it, shows the confidence overlay, runs Auto-detect and a batch repair on a range of
slices, and a short fine-tuning with the Repair widget docked beside it (its before/after
check beside the stack); each step is saved as a PNG in ``docs/images/``.

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from napari.layers import Labels
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QScrollArea

from napari_flowinpaint.gui import BatchRepairWidget, FinetuneWidget, RepairWidget
from napari_flowinpaint.tasks.io.sample import load_sample

OUT = Path(__file__).resolve().parent / "images"
SIZE = (1366, 768)  # a laptop screen: every widget must fit and stay readable there
Z = 8  # the painted slice
BATCH = (4, 12)  # the slices the batch repair covers


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


def damaged_sample():
    """The sample with a white blob and a crack on slice Z, a dark band on slice 6 and a
    bright smear on slice 10; and the blob and crack as a mask."""
    stack, info = load_sample()
    damaged = stack.copy()
    yy, xx = np.mgrid[: stack.shape[1], : stack.shape[2]]
    hole = (yy - 90) ** 2 / 40 ** 2 + (xx - 100) ** 2 / 25 ** 2 < 1
    hole |= np.abs(yy - 0.6 * xx - 20) < 4
    damaged[Z][hole] = 255
    damaged[6][np.abs(yy + 0.4 * xx - 120) < 6] = 15
    damaged[10][(yy - 50) ** 2 + (xx - 140) ** 2 < 30 ** 2] = 250
    return damaged, info, hole


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    damaged, info, hole = damaged_sample()
    voxel = info["voxel_size"]

    viewer = napari.Viewer(title="napari-flowinpaint")
    window = viewer.window._qt_window
    window.resize(*SIZE)
    image = viewer.add_image(damaged, name="em", scale=voxel)
    repair = RepairWidget(viewer)
    repair_dock = viewer.window.add_dock_widget(repair, name="Repair section")
    viewer.dims.set_point(0, Z * voxel[0])
    mask = repair.new_mask()
    mask.data[Z][hole] = 1
    mask.refresh()
    shoot(viewer, "repair-painted.png")

    repair.repair_current_slice()
    settle(repair)
    shoot(viewer, "repair-result.png")

    repair["show_confidence"].value = True
    viewer.mouse_over_canvas = True  # the status bar reads the confidence under the cursor
    viewer.cursor.position = (Z * voxel[0], 100 * voxel[1], 105 * voxel[2])
    shoot(viewer, "repair-confidence.png")
    viewer.mouse_over_canvas = False
    viewer.status = "Ready"
    repair["show_confidence"].value = False

    # the whole stack's damage, found and repaired on a range of slices in one go
    batch = BatchRepairWidget(viewer)
    batch_dock = viewer.window.add_dock_widget(batch, name="Batch repair", tabify=True)
    batch["mask_choice"].value = "auto-detect"
    batch.z_range = BATCH
    viewer.dims.set_point(0, 10 * voxel[0])
    batch.start()
    settle(batch, timeout=900)
    for layer in (mask, viewer.layers["em confidence"]):
        layer.visible = False
    shoot(viewer, "batch.png")

    # fine-tuning, with the Repair widget docked beside it: both fit the laptop screen
    viewer.window.remove_dock_widget(batch_dock)
    for layer in list(viewer.layers):
        if isinstance(layer, Labels) or layer.name == "em confidence":
            viewer.layers.remove(layer)
    viewer.dims.set_point(0, Z * voxel[0])
    finetune = FinetuneWidget(viewer, score_samples=2)
    finetune_dock = viewer.window.add_dock_widget(finetune, name="Fine-tune weights")
    window.resizeDocks([repair_dock, finetune_dock], [250, SIZE[1]],
                       Qt.Orientation.Vertical)
    finetune.image_layer = image
    finetune["iterations"].value = 40
    with tempfile.TemporaryDirectory() as tmp:
        finetune["output_file"].value = Path(tmp) / "my-stack.safetensors"
        finetune.start()
        settle(finetune, timeout=1800)
        bar = finetune_dock.findChild(QScrollArea, "scroll area").verticalScrollBar()
        bar.setValue(bar.maximum())  # the verdict and the loss plot
        viewer.reset_view()  # the stack and, right of it, the before/after check
        shoot(viewer, "finetune.png")
    print("window", window.width(), "x", window.height(), "minimum",
          window.minimumSizeHint().width(), "x", window.minimumSizeHint().height())
    viewer.close()


if __name__ == "__main__":
    main()
