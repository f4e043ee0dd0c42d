"""napari on a big lazy stack: repair one section of a 60 x 4096 x 4096 zarr stack.

Writes the stack (uint8, 1 GB; tiles of the bundled sample), opens it lazily
(``dask.array.from_zarr``) in a napari viewer, docks the Repair widget, marks a blob on
section 30 with **New mask** and presses **Repair slice**, as a user would. Prints the
time until the repaired section is in the result layer, and how much the process's memory
grew (against the stack's size). Needs an X server: ``xvfb-run -a python
benchmarks/bench_napari_lazy.py``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", type=int, default=60)
    ap.add_argument("--side", type=int, default=4096)
    args = ap.parse_args()

    import dask.array as da
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_flowinpaint.gui import RepairWidget
    from napari_flowinpaint.tasks.io import StackWriter, load_sample

    work = Path(tempfile.mkdtemp(prefix="bench-napari-"))
    try:
        sample, _ = load_sample()
        reps = -(-args.side // sample.shape[1])
        path = work / "big.zarr"
        with StackWriter(path, (args.sections, args.side, args.side), np.uint8) as out:
            for z in range(args.sections):
                out[z] = np.tile(sample[z % len(sample)], (reps, reps))[:args.side, :args.side]
        nbytes = args.sections * args.side**2
        proc = psutil.Process()
        viewer = napari.Viewer(show=False)
        viewer.add_image(da.from_zarr(str(path)), name="big")
        widget = RepairWidget(viewer)
        viewer.window.add_dock_widget(widget)
        app = QApplication.instance()
        app.processEvents()
        z = args.sections // 2
        widget.z = z
        mask = widget.new_mask()
        section = np.array(mask.data[z])
        c = args.side // 2
        section[c - 150:c + 150, c - 200:c + 200] = 1
        mask.data[z] = section
        app.processEvents()
        rss0 = proc.memory_info().rss
        t0 = time.perf_counter()
        widget.repair_current_slice()
        result = None
        while time.perf_counter() - t0 < 600:
            app.processEvents()
            result = next((layer for layer in viewer.layers
                           if layer.name == "big repaired"), None)
            if result is not None and z in getattr(result.data, "repaired", ()):
                break
            time.sleep(0.01)
        seconds = time.perf_counter() - t0
        while widget.running:
            app.processEvents()
            time.sleep(0.01)
        grew = (proc.memory_info().rss - rss0) / 2**20
        print(f"{args.sections} x {args.side} x {args.side} uint8 zarr ({nbytes / 2**30:.1f} GB) "
              f"opened lazily: first repaired section shown after {seconds:.2f} s "
              f"(engine start included); memory grew {grew:.0f} MB "
              f"({100 * grew * 2**20 / nbytes:.1f} % of the stack); status: {widget.status}")
        viewer.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
