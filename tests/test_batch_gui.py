"""The "Batch repair" widget: in the Plugins menu, a z-range of a loaded stack repaired with
a mask layer or with Auto-detect, into a layer or a file, and Cancel that keeps what is done.

Run under an X server (pytest-xvfb starts Xvfb); each test builds a hidden viewer.
"""

import threading

import numpy as np
import pytest
from _synth import moving_stack

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari.layers import Image, Labels  # noqa: E402
from napari.utils.notifications import NotificationSeverity as Sev  # noqa: E402

import napari_flowinpaint.gui._detect as detect_module  # noqa: E402
from napari_flowinpaint.engine import FlowInpainter  # noqa: E402
from napari_flowinpaint.gui import BatchRepairWidget  # noqa: E402
from napari_flowinpaint.gui._batch import AUTO_DETECT  # noqa: E402
from napari_flowinpaint.tasks.repair import iter_repair_stack  # noqa: E402

HOLE = (slice(20, 44), slice(18, 46))
HOLE2 = (slice(4, 16), slice(40, 60))  # elsewhere: a neighbour's damage is not in the way


@pytest.fixture
def scene(make_napari_viewer):
    """A 6 x 64 x 64 stack "em" with holes on slices 1, 3 (HOLE) and 4 (HOLE2), a mask
    "painted" marking them, and the Batch repair widget docked (optical flow only: fast
    and deterministic)."""
    truth = moving_stack(6, (64, 64), step=1.5)
    damaged = truth.copy()
    mask = np.zeros(damaged.shape, np.uint8)
    for z, hole in ((1, HOLE), (3, HOLE), (4, HOLE2)):
        damaged[z][hole] = 0
        mask[z][hole] = 1
    viewer = make_napari_viewer()
    image = viewer.add_image(damaged, name="em", scale=(40.0, 5.0, 5.0))
    labels = viewer.add_labels(mask, name="painted")
    widget = BatchRepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    viewer.window.add_dock_widget(widget, name="Batch repair")
    return viewer, widget, image, labels, truth


def _wait(qtbot, widget, timeout=30000):
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def test_batch_repair_is_in_the_plugins_menu(make_napari_viewer):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    app = get_app_model()
    titles = {}
    for item in app.menus.get_menu("napari/plugins"):
        submenu = getattr(item, "submenu", None)
        for sub in app.menus.get_menu(submenu) if submenu else []:
            if hasattr(sub, "command"):
                titles[sub.command.id] = sub.command.title
    assert titles.get("napari-flowinpaint.batch_widget") == "Batch repair (FlowInpaint)"
    # the menu entry opens it docked, as it does for the user
    app.commands.execute_command("napari-flowinpaint.batch_widget").result()
    docked = [w for w in viewer.window.dock_widgets.values()
              if isinstance(w, BatchRepairWidget)]
    assert len(docked) == 1


def test_a_z_range_is_repaired_into_a_layer_and_the_rest_is_unchanged(scene, qtbot, notes):
    viewer, widget, image, labels, truth = scene
    original, painted = image.data.copy(), labels.data.copy()
    assert widget.mask_layer == AUTO_DETECT  # a layer it did not make is never taken unasked
    assert widget["mask_choice"].choices == (AUTO_DETECT, labels)
    assert widget.z_range == (0, 5)  # the whole stack by default
    widget.mask_layer = labels
    widget.z_range = (2, 4)
    widget["start_button"].native.click()
    _wait(qtbot, widget)

    result = viewer.layers["em repaired"]
    assert isinstance(result, Image) and result.data.shape == image.data.shape
    # the tasks layer's own repair of those sections, to the bit (no repair logic of its own)
    expected = dict(iter_repair_stack(original, painted, slices=[3, 4],
                                      inpainter=FlowInpainter(stages="initial_reference")))
    for z, hole in ((3, HOLE), (4, HOLE2)):
        np.testing.assert_array_equal(np.asarray(result.data[z]), expected[z])
        err = np.abs(np.asarray(result.data[z])[hole].astype(float) - truth[z][hole]).mean()
        assert err < 12.0, (z, err)  # the holes were 0, about 130 off
        outside = painted[z] == 0
        np.testing.assert_array_equal(np.asarray(result.data[z])[outside], original[z][outside])
    for z in (0, 1, 2, 5):  # outside the range (1 is painted), or not painted: unchanged
        np.testing.assert_array_equal(np.asarray(result.data[z]), original[z])
    np.testing.assert_array_equal(image.data, original)
    np.testing.assert_array_equal(labels.data, painted)
    assert widget.status.startswith("2 slices repaired (3-4) by optical flow only in ")
    assert widget.status.endswith("in 'em repaired'.")
    assert notes[-1] == (Sev.INFO, widget.status)
    layers = list(viewer.layers)
    assert layers.index(result) == layers.index(image) + 1  # over the image, under the mask


class _Gated(FlowInpainter):
    """Optical flow only; every repair after the first waits for ``gate`` (20 s at most):
    a busy machine cannot finish before the test cancels."""

    def __init__(self):
        super().__init__(stages="initial_reference")
        self.gate, self.calls = threading.Event(), 0

    def inpaint(self, *args, **kwargs):
        self.calls += 1
        if self.calls > 1:
            self.gate.wait(20)
        return super().inpaint(*args, **kwargs)


@pytest.mark.parametrize("output", ["new layer", "file"])
def test_cancel_keeps_the_finished_sections(make_napari_viewer, qtbot, tmp_path, output):
    truth = moving_stack(6, (64, 64), step=1.5)
    viewer = make_napari_viewer()
    image = viewer.add_image(truth, name="em")
    mask = np.zeros(truth.shape, np.uint8)
    mask[1:5][(slice(None), *HOLE)] = 1
    viewer.add_labels(mask, name="painted")
    engine = _Gated()
    widget = BatchRepairWidget(viewer, inpainter=engine)
    viewer.window.add_dock_widget(widget)
    widget.mask_layer = viewer.layers["painted"]
    widget["output_choice"].value = output
    path = tmp_path / "out.tif"
    widget["output_file"].value = path
    assert widget["output_file"].native.isHidden() == (output != "file")
    widget.start()
    assert widget.running and widget["cancel_button"].enabled
    qtbot.waitUntil(lambda: "(1 of 4)" in widget.status, timeout=20000)
    widget["cancel_button"].native.click()
    engine.gate.set()  # the slice in progress finishes; the job stops after it
    _wait(qtbot, widget)
    assert widget.status.startswith("Batch repair stopped: cancelled; ")
    done = [z for z in range(6)
            if not np.array_equal(np.asarray(viewer.layers["em repaired"].data[z]), truth[z])]
    assert 1 <= len(done) < 4 and done == [1, 2, 3, 4][: len(done)]
    assert f"{len(done)} of 4 slices repaired" in widget.status
    assert not path.exists()  # an incomplete file is never written
    assert ("the file was not written" in widget.status) == (output == "file")
    np.testing.assert_array_equal(image.data, truth)
    assert widget["start_button"].enabled and not widget["cancel_button"].enabled


def test_auto_detect_then_repair_into_a_file(make_napari_viewer, qtbot, tmp_path,
                                             monkeypatch):
    """Auto-detect's mask becomes a layer (sections outside the range untouched), the
    repaired stack is written whole to the file with the layer's voxel size."""
    from napari_flowinpaint.tasks.io import read_stack, read_voxel_size

    def detector(stack, zs, grow=0, **_options):  # stands in for the learned detector
        for z in zs:
            found = np.zeros(stack.shape[1:], bool)
            if z in (1, 3):
                found[HOLE] = True
            yield z, found

    monkeypatch.setattr(detect_module, "iter_detect_damage", detector)
    monkeypatch.setattr(detect_module, "known_normal_area", lambda *a, **k: 0)
    truth = moving_stack(5, (64, 64), step=1.5)
    damaged = truth.copy()
    damaged[1][HOLE] = 255
    damaged[3][HOLE] = 255
    viewer = make_napari_viewer()
    viewer.add_image(damaged, name="em", scale=(40.0, 5.0, 5.0))
    widget = BatchRepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    viewer.window.add_dock_widget(widget)
    assert widget.mask_layer == AUTO_DETECT
    widget.z_range = (0, 2)
    widget["output_choice"].value = "file"
    existing = tmp_path / "exists.tif"
    existing.write_bytes(b"keep")
    widget["output_file"].value = existing
    widget.start()
    assert "already exists; choose a new file name" in widget.status and not widget.running
    assert existing.read_bytes() == b"keep"
    path = tmp_path / "repaired.tif"
    widget["output_file"].value = path
    widget.start()
    _wait(qtbot, widget)
    mask = viewer.layers["em damage mask"]
    assert isinstance(mask, Labels)
    assert mask.data[1][HOLE].all() and not mask.data[3].any()  # 3 is outside the range
    assert widget.status.startswith("damage found on 1 of 3 slices checked (1), kept in "
                                    "'em damage mask'; 1 slice repaired (1) by optical flow")
    assert widget.status.endswith(f"; written to {path}.")
    written = np.asarray(read_stack(path))
    np.testing.assert_array_equal(written, np.asarray(viewer.layers["em repaired"].data))
    np.testing.assert_array_equal(np.delete(written, 1, 0), np.delete(damaged, 1, 0))
    assert np.abs(written[1][HOLE].astype(float) - truth[1][HOLE]).mean() < 6.0
    assert tuple(read_voxel_size(path)) == pytest.approx((40.0, 5.0, 5.0))
    # the mask it made is Auto-detect's proposal: taken for this image by the next run
    other = BatchRepairWidget(viewer)
    assert other.mask_layer is mask


def test_only_stacks_and_masks_of_their_shape_are_offered(make_napari_viewer):
    viewer = make_napari_viewer()
    stack = viewer.add_image(moving_stack(5, (32, 32)), name="stack")
    viewer.add_image(np.zeros((5, 32, 32, 3), np.uint8), name="rgb", rgb=True)
    viewer.add_image(stack.data[0], name="flat")
    fits = viewer.add_labels(np.zeros((5, 32, 32), np.uint8), name="fits")
    viewer.add_labels(np.zeros((5, 16, 16), np.uint8), name="small")
    widget = BatchRepairWidget(viewer)
    assert [c for c in widget["image_choice"].choices if c is not None] == [stack]
    assert widget["mask_choice"].choices == (AUTO_DETECT, fits)
    widget.z_range = (3, 1)
    widget.start()
    assert widget.status == "'from z' (3) is after 'to z' (1); swap them."
    assert not widget.running
