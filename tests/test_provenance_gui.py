"""The Repair widget's Save result... writes the provenance record too (mask source
"painted"), as repair does. Run under an X server (pytest-xvfb starts Xvfb)."""

import json

import numpy as np
import pytest
import tifffile
from _synth import moving_stack

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari_flowinpaint.engine import FlowInpainter  # noqa: E402
from napari_flowinpaint.gui import RepairWidget  # noqa: E402
from napari_flowinpaint.tasks.provenance import parse_description  # noqa: E402

HOLE = (slice(20, 44), slice(18, 46))


def test_a_saved_repair_carries_the_record_of_what_was_painted(make_napari_viewer, qtbot,
                                                               tmp_path):
    damaged = moving_stack(5, (64, 64), step=1.5)
    damaged[2][HOLE] = 0
    viewer = make_napari_viewer()
    viewer.add_image(damaged, name="em", scale=(40.0, 5.0, 5.0), units="nanometer")
    widget = RepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    viewer.window.add_dock_widget(widget, name="Repair section")
    mask = widget.new_mask()
    mask.data[2][HOLE] = 1
    widget.z = 2
    widget.repair_current_slice()
    qtbot.waitUntil(lambda: not widget.running, timeout=20000)
    confidence = viewer.layers["em confidence"].data[2][HOLE]
    out = tmp_path / "saved.tif"
    widget.save_result(out)
    qtbot.waitUntil(lambda: not widget.running, timeout=20000)
    assert widget.status.startswith("Saved"), widget.status
    record = json.loads((tmp_path / "saved.tif.provenance.json").read_text())
    with tifffile.TiffFile(out) as tif:
        assert parse_description(tif.imagej_metadata["Info"]) == record
    assert record["command"] == "napari" and record["mask"]["source"] == "painted"
    assert record["mask"]["layer"] == mask.name
    assert record["sections"] == [{"z": 2, "damaged_pixels": 24 * 28, "mean_confidence":
                                   pytest.approx(float(np.mean(confidence)), abs=1e-6)}]
    assert record["input"]["layer"] == "em" and record["input"]["path"] is None
    assert record["input"]["voxel_size_nm"] == pytest.approx([40, 5, 5])
    assert record["options"]["stages"] == "initial_reference" and record["weights"] is None
