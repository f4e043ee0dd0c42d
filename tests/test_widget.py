"""The napari adapters: repair widget, menu command, sample data and manifest.

Run under an X server (pytest-xvfb starts Xvfb); each test builds a hidden viewer.
"""

import threading
from pathlib import Path

import numpy as np
import pytest
from _synth import moving_stack

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari.layers import Image, Labels  # noqa: E402
from napari.utils.notifications import NotificationSeverity  # noqa: E402

from napari_flowinpaint.engine import FlowInpainter  # noqa: E402
from napari_flowinpaint.engine.names import STAGE_LABELS  # noqa: E402
from napari_flowinpaint.gui import RepairWidget, repair_all_masked_slices  # noqa: E402

MANIFEST = Path(__file__).parents[1] / "src" / "napari_flowinpaint" / "napari.yaml"
HOLE = (slice(20, 44), slice(18, 46))
SCALE = (40.0, 5.0, 5.0)


@pytest.fixture
def scene(make_napari_viewer):
    """A viewer with a damaged 5x64x64 stack (slice 2 blanked in HOLE) and the widget docked."""
    truth = moving_stack(5, (64, 64), step=1.5)
    damaged = truth.copy()
    damaged[2][HOLE] = 0
    viewer = make_napari_viewer()
    image = viewer.add_image(damaged, name="em", scale=SCALE, contrast_limits=(10, 230),
                             colormap="magma")
    # the GUI plumbing is checked with the deterministic optical-flow stage (known error)
    widget = RepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    viewer.window.add_dock_widget(widget, name="Repair section")
    return viewer, widget, image, truth


def _wait(qtbot, widget, timeout=20000):
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def _warnings(notes):
    return [msg for sev, msg in notes if sev == NotificationSeverity.WARNING]


def test_new_mask_makes_a_selected_paintable_layer(scene):
    viewer, widget, image, _ = scene
    assert widget.image_layer is image
    widget["new_mask_button"].native.click()
    mask = viewer.layers["em damage mask"]
    assert isinstance(mask, Labels)
    assert mask.data.shape == image.data.shape and mask.data.dtype == np.uint8
    assert not mask.data.any()
    np.testing.assert_array_equal(mask.scale, image.scale)
    assert viewer.layers.selection.active is mask
    assert mask.mode == "paint" and mask.selected_label == 1 and mask.brush_size >= 5
    assert widget.mask_layer is mask


def test_slice_index_follows_the_viewer(scene):
    viewer, widget, _, _ = scene
    viewer.dims.set_point(0, 3 * SCALE[0])  # world coordinates: z = 3
    assert widget.z == 3
    widget.z = 1  # and the other way round
    assert viewer.dims.point[0] == pytest.approx(1 * SCALE[0])


def test_repair_slice(scene, qtbot, notes):
    viewer, widget, image, truth = scene
    original = image.data.copy()
    mask = widget.new_mask()
    mask.data[2][HOLE] = 1
    painted = mask.data.copy()
    viewer.dims.set_point(0, 2 * SCALE[0])
    assert widget.z == 2

    widget["repair_button"].native.click()
    _wait(qtbot, widget)

    result = viewer.layers["em repaired"]
    assert isinstance(result, Image) and result.data.shape == image.data.shape
    hole = painted[2].astype(bool)
    err_repaired = np.abs(result.data[2][hole].astype(float) - truth[2][hole]).mean()
    err_damaged = np.abs(original[2][hole].astype(float) - truth[2][hole]).mean()
    assert err_repaired < 6.0, err_repaired
    assert err_repaired < 0.1 * err_damaged
    np.testing.assert_array_equal(result.data[2][~hole], original[2][~hole])
    np.testing.assert_array_equal(np.delete(result.data, 2, axis=0),
                                  np.delete(original, 2, axis=0))
    # the display matches the source, and the inputs are untouched
    np.testing.assert_array_equal(result.scale, image.scale)
    assert tuple(result.contrast_limits) == tuple(image.contrast_limits)
    assert result.colormap.name == image.colormap.name
    np.testing.assert_array_equal(image.data, original)
    np.testing.assert_array_equal(mask.data, painted)
    # the result is shown over the image, the confidence overlay is there but off, and the
    # mask stays on top, visible and selected for more painting, drawn as outlines so that
    # the repair shows through it
    layers = viewer.layers
    assert layers.index(result) == layers.index(image) + 1 and result.visible
    confidence = layers["em confidence"]
    assert layers.index(confidence) == layers.index(result) + 1 and not confidence.visible
    assert layers.index(mask) == layers.index(confidence) + 1
    assert mask.visible and mask.contour > 0
    assert confidence.data.dtype == np.float32
    assert (np.asarray(confidence.data[2])[~hole] == 1).all()
    assert 0 < np.asarray(confidence.data[2])[hole].mean() < 1
    assert (np.asarray(confidence.data[1]) == 1).all()
    assert viewer.layers.selection.active is mask
    assert widget.status.startswith("slice 2 repaired from 1 and 3 by optical flow only in ")
    assert "; mean confidence " in widget.status and "initial_reference" not in widget.status
    # before/after, and the overlay, from the widget
    widget["show_result"].value = False
    assert not result.visible
    widget["show_result"].value = True
    assert not confidence.colorbar.visible
    widget["show_confidence"].value = True
    assert result.visible and confidence.visible
    # with its legend, and translucent over the repair it describes
    assert confidence.colorbar.visible and confidence.opacity < 1
    assert not [n for n in notes if n[0] >= NotificationSeverity.WARNING]


def test_repair_all_masked_slices_updates_one_layer(scene, qtbot):
    viewer, widget, image, truth = scene
    stack = truth.copy()
    stack[1][HOLE] = 255
    stack[3][HOLE] = 0
    image.data = stack
    mask = widget.new_mask()
    mask.data[1][HOLE] = 1
    mask.data[3][HOLE] = 1
    painted = mask.data.copy()

    widget["repair_all_button"].native.click()
    _wait(qtbot, widget)
    result = viewer.layers["em repaired"]
    for z in (1, 3):
        err = np.abs(result.data[z][HOLE].astype(float) - truth[z][HOLE]).mean()
        assert err < 6.0, (z, err)
        np.testing.assert_array_equal(result.data[z][painted[z] == 0], stack[z][painted[z] == 0])
    for z in (0, 2, 4):
        np.testing.assert_array_equal(result.data[z], stack[z])
    assert widget.status.startswith("2 slices repaired (1, 3) by optical flow only in ")
    np.testing.assert_array_equal(image.data, stack)
    np.testing.assert_array_equal(mask.data, painted)

    # a second run updates the same layer in place instead of adding another
    before = np.asarray(result.data)
    widget["repair_all_button"].native.click()
    _wait(qtbot, widget)
    assert [layer.name for layer in viewer.layers].count("em repaired") == 1
    assert viewer.layers["em repaired"] is result
    np.testing.assert_array_equal(result.data, before)


class _GatedInpainter(FlowInpainter):
    """Repairs the first slice at once, then waits for ``gate`` (at most 20 s) before each
    of the others: a busy machine cannot finish the job before the test cancels it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate, self.calls = threading.Event(), 0

    def inpaint(self, *args, **kwargs):
        self.calls += 1
        if self.calls > 1:
            self.gate.wait(20)
        return super().inpaint(*args, **kwargs)


def test_cancel_keeps_finished_slices(make_napari_viewer, qtbot):
    truth = moving_stack(6, (64, 64), step=1.5)
    viewer = make_napari_viewer()
    image = viewer.add_image(truth, name="em")
    engine = _GatedInpainter()
    widget = RepairWidget(viewer, inpainter=engine)
    viewer.window.add_dock_widget(widget)
    mask = widget.new_mask()
    for z in (1, 2, 3, 4):
        mask.data[z][HOLE] = 1
    statuses = []
    widget._set_status = (lambda text, _orig=widget._set_status:
                          statuses.append(text) or _orig(text))
    widget.repair_all()
    assert widget.running and widget["cancel_button"].enabled
    qtbot.waitUntil(lambda: any("(1 of 4)" in t for t in statuses), timeout=20000)
    widget["cancel_button"].native.click()
    engine.gate.set()  # the slice in progress finishes; the job stops after it
    _wait(qtbot, widget)
    assert widget.status.startswith("stopped: ")
    done = [int(s) for s in widget.status.split("(")[1].split(")")[0].split(", ")]
    assert 1 <= len(done) < 4 and done == [1, 2, 3, 4][: len(done)]
    result = viewer.layers["em repaired"]
    for z in range(6):
        changed = not np.array_equal(result.data[z], truth[z])
        assert changed == (z in done), z
    np.testing.assert_array_equal(image.data, truth)
    assert widget["repair_button"].enabled and not widget["cancel_button"].enabled


def test_problems_become_notifications(scene, notes):
    viewer, widget, image, _ = scene
    # no mask layer at all
    widget.repair_current_slice()
    assert "No damage mask" in _warnings(notes)[-1]
    # a mask with nothing painted on the current slice
    mask = widget.new_mask()
    mask.data[1][HOLE] = 1
    viewer.dims.set_point(0, 3 * SCALE[0])
    widget.repair_current_slice()
    assert "No damage is painted on slice 3" in _warnings(notes)[-1]
    assert "No damage is painted on slice 3" in widget.status
    # a mask of another shape is not offered, nor are a 2-D and an RGB image: once no
    # image is left, the message says why those were not offered
    other = viewer.add_labels(np.zeros((5, 32, 32), np.uint8), name="small")
    assert other not in widget["mask_choice"].choices
    viewer.add_image(image.data[0], name="flat")
    viewer.add_image(np.zeros((16, 16, 3), np.uint8), name="rgb", rgb=True)
    assert [c for c in widget["image_choice"].choices if c is not None] == [image]
    viewer.layers.remove(image)
    assert widget.image_layer is None
    widget["new_mask_button"].native.click()
    text = _warnings(notes)[-1]
    assert text.startswith("No image layer") and "Not offered: 'flat' is a single 2-D slice" in text
    assert "'rgb' is an RGB image" in text
    widget.repair_all()
    assert "No image layer" in _warnings(notes)[-1]
    assert "em repaired" not in [layer.name for layer in viewer.layers]
    assert not widget.running


def test_engine_errors_become_notifications(make_napari_viewer, qtbot, notes):
    # every neighbour of slice 1 is blank: the tasks layer refuses, the GUI says so
    stack = np.zeros((3, 32, 32), np.uint8)
    stack[1] = moving_stack(1, (32, 32))[0]
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="em")
    widget = RepairWidget(viewer)
    viewer.window.add_dock_widget(widget)
    mask = widget.new_mask()
    mask.data[1][8:16, 8:16] = 1
    widget.z = 1
    widget.repair_current_slice()
    _wait(qtbot, widget)
    errors = [msg for sev, msg in notes if sev == NotificationSeverity.ERROR]
    assert len(errors) == 1 and "no usable neighbour" in errors[0]
    assert widget.status.startswith("Repair of slice 1 failed: section 1 has no usable")
    assert "em repaired" not in [layer.name for layer in viewer.layers]
    # in a batch, the sections before the failing one are kept
    mask.data[0][8:16, 8:16] = 1
    widget.repair_all()
    _wait(qtbot, widget)
    errors = [msg for sev, msg in notes if sev == NotificationSeverity.ERROR]
    assert len(errors) == 2 and "slice 1 failed" in errors[1]
    assert widget.status.startswith("stopped at slice 1 (see the error); 1 of 2 slices")
    assert widget["repair_button"].enabled


class _BrokenInpainter(FlowInpainter):
    def inpaint(self, *args, **kwargs):
        raise RuntimeError("simulated engine bug")


def test_unexpected_errors_are_shown_once(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    viewer.add_image(moving_stack(3, (32, 32)), name="em")
    widget = RepairWidget(viewer, inpainter=_BrokenInpainter())
    viewer.window.add_dock_widget(widget)
    mask = widget.new_mask()
    mask.data[1][8:16, 8:16] = 1
    widget.z = 1
    widget["repair_button"].native.click()
    _wait(qtbot, widget)
    errors = [msg for sev, msg in notes if sev == NotificationSeverity.ERROR]
    assert errors == ["Repair of slice 1 failed: RuntimeError: simulated engine bug"]
    assert widget.status == errors[0]
    assert widget["repair_button"].enabled and "em repaired" not in viewer.layers


def _paint_and_repair(widget, qtbot, z: int):
    """A new mask painted in HOLE on slice ``z``, repaired; returns the mask."""
    mask = widget.new_mask()
    mask.data[z][HOLE] = 1
    widget.z = z
    widget.repair_current_slice()
    _wait(qtbot, widget)
    return mask


def test_engine_is_created_once_and_edges_use_one_neighbour(scene, qtbot, notes):
    viewer, widget, image, _ = scene
    mask = _paint_and_repair(widget, qtbot, 2)
    engine = widget.inpainter
    # the last section has one neighbour: the tasks layer warns, the status says so
    mask.data[4][HOLE] = 1
    widget.z = 4
    widget.repair_current_slice()
    _wait(qtbot, widget)
    assert "section 4 has a usable neighbour on one side only" in _warnings(notes)[-1]
    assert widget.status.startswith(f"slice 4 repaired from 3 by {STAGE_LABELS[engine.method]}")
    widget.repair_all()
    _wait(qtbot, widget)
    assert widget.inpainter is engine


def test_menu_command_repairs_the_selected_stack(make_napari_viewer, qtbot):
    truth = moving_stack(5, (64, 64), step=1.5)
    damaged = truth.copy()
    damaged[2][HOLE] = 0
    viewer = make_napari_viewer()
    image = viewer.add_image(damaged, name="em")
    mask = viewer.add_labels(np.zeros(damaged.shape, np.uint8), name="damage")
    mask.data[2][HOLE] = 1
    viewer.layers.selection.active = mask
    # run it the way the menu does: through napari's app model, which injects the viewer
    from napari._app_model import get_app_model

    app = get_app_model()
    command = "napari-flowinpaint.repair_all_masked"
    items = app.menus.get_menu("napari/layers/filter")
    assert command in [item.command.id for item in items if hasattr(item, "command")]
    widget = app.commands.execute_command(command).result()
    assert isinstance(widget, RepairWidget)
    assert widget.image_layer is image and widget.mask_layer is mask
    _wait(qtbot, widget)
    result = viewer.layers["em repaired"]
    err = np.abs(result.data[2][HOLE].astype(float) - truth[2][HOLE]).mean()
    assert err < 20.0  # default engine (learned stages); the hole was 0, about 130 off
    # the command reuses the docked widget
    assert repair_all_masked_slices(viewer) is widget
    _wait(qtbot, widget)


def test_sample_data_opens_as_a_scaled_layer(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-flowinpaint", "fibsem_medulla")
    assert len(layers) == 1
    layer = layers[0]
    assert isinstance(layer, Image) and layer.ndim == 3 and layer.data.dtype == np.uint8
    assert layer.data.shape[0] >= 5
    np.testing.assert_allclose(layer.scale, (40.0, 10.0, 10.0))
    assert "CC BY 3.0" in layer.metadata["attribution"]


def test_manifest_is_valid_and_importable():
    import npe2

    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "napari-flowinpaint"
    assert manifest.display_name == "FlowInpaint"
    manifest.validate_imports()
    widgets = {w.display_name: w.command for w in manifest.contributions.widgets}
    assert widgets == {"Repair section": "napari-flowinpaint.repair_widget",
                       "Batch repair": "napari-flowinpaint.batch_widget",
                       "Fine-tune weights": "napari-flowinpaint.finetune_widget"}
    menu = manifest.contributions.menus["napari/layers/filter"]
    assert [item.command for item in menu] == ["napari-flowinpaint.repair_all_masked"]
    samples = manifest.contributions.sample_data
    assert [s.command for s in samples] == ["napari-flowinpaint.sample"]
    # the installed entry point finds the same manifest
    installed = npe2.PluginManifest.from_distribution("napari-flowinpaint")
    assert installed.name == manifest.name


# ------------------------------------------------------------------------- auto-detect
SAMPLE = Path(__file__).parents[1] / "src" / "napari_flowinpaint" / "data" / \
    "fibsem_medulla_sample.tif"


def _detector_bundled():
    from napari_flowinpaint.engine.weights import bundled_detector_path

    return bundled_detector_path() is not None


needs_detector = pytest.mark.skipif(not _detector_bundled(),
                                    reason="no bundled detector weights in weights/")


@pytest.fixture
def damaged_sample(make_napari_viewer):
    """The real FIB-SEM sample with a white hole on slice 4 and a missing slice 6."""
    import tifffile

    from napari_flowinpaint.tasks.simulation import simulate_damage

    stack = tifffile.imread(SAMPLE)[:8].copy()
    stack[4], truth = simulate_damage(stack[4], "hole", 5)
    stack[6] = 255
    viewer = make_napari_viewer()
    image = viewer.add_image(stack, name="em", scale=SCALE)
    widget = RepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    viewer.window.add_dock_widget(widget)
    return viewer, widget, image, truth


@needs_detector
def test_auto_detect_fills_the_mask_of_the_current_slice(damaged_sample, qtbot):
    viewer, widget, image, truth = damaged_sample
    original = image.data.copy()
    viewer.dims.set_point(0, 4 * SCALE[0])
    assert widget["detect_scope"].value == "current slice"
    widget["detect_grow"].value = 0
    widget["detect_button"].native.click()  # no mask yet: one is made
    _wait(qtbot, widget)
    mask = viewer.layers["em damage mask"]
    found = mask.data[4] > 0
    tp = np.count_nonzero(found & truth)
    f1 = 2 * tp / (found.sum() + truth.sum())
    assert f1 > 0.8, f1
    assert not np.delete(mask.data, 4, axis=0).any()  # only the current slice
    assert widget.status.startswith("damage found on 1 of 1 slice checked (4)")
    np.testing.assert_array_equal(image.data, original)
    # the proposal repairs like a painted mask
    widget["repair_button"].native.click()
    _wait(qtbot, widget)
    assert viewer.layers["em repaired"].data[4][truth].mean() < 200


@needs_detector
def test_auto_detect_all_slices_asks_before_touching_painted_ones(damaged_sample, qtbot):
    viewer, widget, image, truth = damaged_sample
    mask = widget.new_mask()
    mask.data[1][10:20, 10:20] = 2  # the user's own strokes, on another slice
    mask.data[4][0:5, 0:5] = 3
    viewer.dims.set_point(0, 0)
    questions = []
    widget.ask = lambda q: questions.append(q) or "skip"
    widget["detect_scope"].value = "all slices"
    widget["detect_button"].native.click()
    _wait(qtbot, widget)
    assert len(questions) == 1 and "Slices 1, 4" in questions[0]
    # painted slices skipped and untouched; the missing slice found whole
    assert (mask.data[1] > 0).sum() == 100 and (mask.data[4] > 0).sum() == 25
    assert (mask.data[6] == 1).all()
    listed = widget.status.split("(")[1].split(")")[0].split(", ")
    assert "6" in listed and "1" not in listed and "4" not in listed, widget.status
    # "add": detected pixels are added, the user's labels are kept as painted
    widget.ask = lambda q: "add"
    widget.auto_detect("all slices")
    _wait(qtbot, widget)
    assert (mask.data[1][10:20, 10:20] == 2).all() and (mask.data[4][0:5, 0:5] == 3).all()
    assert (mask.data[4][truth] > 0).mean() > 0.8
    # "cancel": nothing runs
    before = mask.data.copy()
    widget.ask = lambda q: "cancel"
    widget.auto_detect("all slices")  # the painted slices are found in the worker
    _wait(qtbot, widget)
    assert not widget.running and widget.status == "Auto-detect cancelled."
    np.testing.assert_array_equal(mask.data, before)


def test_repair_mode_choice_reaches_the_engine(make_napari_viewer, qtbot):
    """The widget's *repair* choice: textured by default, faithful on request; the engine of
    a running repair is never changed under it."""
    truth = moving_stack(3, (64, 64), step=1.0, seed=3)
    damaged = truth.copy()
    damaged[1][HOLE] = 0
    viewer = make_napari_viewer()
    viewer.add_image(damaged, name="em")
    widget = RepairWidget(viewer)
    mask = widget.new_mask()
    mask.data[1][HOLE] = 1
    widget.z = 1
    assert widget["repair_mode"].value == "textured"
    results = {}
    for mode in ("textured", "faithful"):
        before = widget._inpainter
        widget["repair_mode"].value = mode
        widget.repair_current_slice()
        _wait(qtbot, widget, timeout=60000)
        assert widget.inpainter.mode == mode
        if before is not None:
            assert before.mode == "textured"  # a copy was changed, not the engine in use
        results[mode] = np.array(viewer.layers["em repaired"].data[1])
    hole = np.zeros((64, 64), bool)
    hole[HOLE] = True
    expected = FlowInpainter(mode="faithful").inpaint(damaged[0], damaged[1], damaged[2], hole)
    np.testing.assert_array_equal(results["faithful"], expected)
    assert not np.array_equal(results["textured"][hole], results["faithful"][hole])
    assert widget.status == "" or "repaired" in widget.status


def test_result_layers_are_never_offered_as_inputs(scene, qtbot):
    """After a repair, reopening the widget (or a second one) still picks the image, and the
    repaired and confidence layers are in no image choice, here nor in Fine-tune."""
    from napari_flowinpaint.gui import FinetuneWidget

    viewer, widget, image, _ = scene
    _paint_and_repair(widget, qtbot, 2)
    names = {layer.name for layer in viewer.layers}
    assert {"em repaired", "em confidence"} <= names
    viewer.layers.selection.active = viewer.layers["em confidence"]
    other = RepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    finetune = FinetuneWidget(viewer)
    for w in (widget, other, finetune):
        offered = [name for name, _ in w._image_choices()]
        assert offered == ["em"], offered
        assert w.image_layer is image


@needs_detector
def test_first_auto_detect_shows_learning_what_is_normal_and_remembers_it(damaged_sample,
                                                                         qtbot):
    """The first Auto-detect on a stack learns what is normal for it as a step of its own
    (status and bar), the same result as the detection's own default; later runs skip it,
    on the same data opened again too. Cancel during that step stops with nothing added."""
    from napari_flowinpaint.tasks.detection import detect_damage
    from napari_flowinpaint.tasks.detection.detector import NORMAL_AREAS

    NORMAL_AREAS.clear()  # earlier tests in this process may have judged the same data
    viewer, widget, image, truth = damaged_sample
    viewer.dims.set_point(0, 4 * SCALE[0])
    statuses = []
    widget._set_status = (lambda text, _orig=widget._set_status:
                          statuses.append(text) or _orig(text))
    widget["detect_grow"].value = 0
    widget["detect_button"].native.click()
    _wait(qtbot, widget)
    learning = [t for t in statuses if t.startswith("Learning what is normal for this stack")]
    assert learning and learning[-1].endswith("slices judged...")
    assert "1 of " in learning[0]
    mask = viewer.layers["em damage mask"]
    expected = detect_damage(image.data, 4)  # the library's own (relative) detection
    np.testing.assert_array_equal(mask.data[4] > 0, expected)
    statuses.clear()
    mask.data[4] = 0
    widget["detect_button"].native.click()
    _wait(qtbot, widget)
    assert not [t for t in statuses if t.startswith("Learning")]  # remembered
    np.testing.assert_array_equal(mask.data[4] > 0, expected)
    # the same data opened again (another array): remembered by its content
    again = viewer.add_image(np.array(image.data), name="em again", scale=SCALE)
    widget.image_layer = again
    widget.mask_layer = None
    statuses.clear()
    widget["detect_button"].native.click()
    _wait(qtbot, widget)
    assert not [t for t in statuses if t.startswith("Learning")]
    np.testing.assert_array_equal(viewer.layers["em again damage mask"].data[4] > 0, expected)
    # another stack: learned again, and Cancel during learning adds nothing
    other = viewer.add_image(np.array(image.data)[:, ::-1], name="em2", scale=SCALE)
    widget.image_layer = other
    widget.mask_layer = None
    statuses.clear()
    widget["detect_button"].native.click()
    qtbot.waitUntil(lambda: any(t.startswith("Learning") for t in statuses), timeout=30000)
    widget.cancel()
    _wait(qtbot, widget)
    assert not viewer.layers["em2 damage mask"].data.any()
