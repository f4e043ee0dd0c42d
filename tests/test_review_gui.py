"""Reviewing a repair in napari: which mask is used, what is asked before a big repair, the
result on top with a before/after toggle, the confidence overlay, the widget's own progress
bar, and Auto-detect as one undo step.

Run under an X server (pytest-xvfb starts Xvfb); each test builds a hidden viewer.
"""

import numpy as np
import pytest
from _synth import moving_stack

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari_flowinpaint.engine import FlowInpainter  # noqa: E402
from napari_flowinpaint.gui import RepairWidget  # noqa: E402
from napari_flowinpaint.gui._results import CONFIDENCE_COLORMAP  # noqa: E402

HOLE = (slice(20, 44), slice(18, 46))


def _segmentation(shape, n=40, seed=0):
    """A neuron-segmentation-like labels stack: ``n`` labels covering most of each slice."""
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, shape[1], (n, 2))
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    d = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
    labels = (np.argmin(d, axis=0) + 1).astype(np.uint16)
    labels[d.min(axis=0) < 3] = 0  # thin membranes between the cells
    return np.broadcast_to(labels, shape).copy()


@pytest.fixture
def scene(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(moving_stack(6, (64, 64), step=1.5), name="em")
    widget = RepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    viewer.window.add_dock_widget(widget, name="Repair section")
    return viewer, widget, image


def _wait(qtbot, widget, timeout=20000):
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def test_a_segmentation_is_never_taken_as_the_mask_unasked(scene, make_napari_viewer):
    viewer, widget, image = scene
    viewer.add_labels(_segmentation(image.data.shape), name="neurons")
    widget.image_layer = None
    widget.image_layer = image  # picking the image again looks for its mask
    assert widget.mask_layer is None
    made = widget.new_mask()
    assert widget.mask_layer is made
    # a fresh widget on a viewer with both finds the mask it made, not the segmentation
    other = RepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    assert other.mask_layer is made


@pytest.mark.parametrize("answer", [False, True])
def test_repair_all_with_a_segmentation_asks_first_and_says_how_much(scene, qtbot, answer):
    viewer, widget, image = scene
    original = image.data.copy()
    labels = _segmentation(image.data.shape)
    labels[[0, 5]] = 0  # the first and last slices are clean: they guide the repair
    neurons = viewer.add_labels(labels, name="neurons")
    widget.mask_layer = neurons  # the user chose it
    questions = []
    widget.confirm = lambda q: questions.append(q) or answer
    widget.repair_all()
    _wait(qtbot, widget)
    (question,) = questions
    share = 100 * np.count_nonzero(neurons.data) / neurons.data.size
    assert f"marks {share:.0f} % of the stack (on 4 of 6 slices)" in question
    assert "different labels, so it looks like a segmentation" in question
    if answer:
        assert widget.status.startswith("4 slices repaired")
    else:
        assert widget.status.startswith("Nothing was repaired: the mask 'neurons' was not used")
        assert "em repaired" not in viewer.layers
    np.testing.assert_array_equal(image.data, original)


def test_a_big_damage_mask_is_asked_about_and_a_small_one_is_not(scene, qtbot):
    viewer, widget, image = scene
    mask = widget.new_mask()
    questions = []
    widget.confirm = lambda q: questions.append(q) or True
    mask.data[2][HOLE] = 1
    widget.repair_all()
    _wait(qtbot, widget)
    assert questions == [] and widget.status.startswith("1 slice repaired (2)")
    mask.data[1:5] = 1  # four whole slices of six: 67 % of the stack
    widget.repair_all()
    _wait(qtbot, widget)
    assert len(questions) == 1 and "marks 67 % of the stack (on 4 of 6 slices) with 1 label" \
        in questions[0]


def test_repair_slice_asks_when_the_slice_looks_segmented(scene, qtbot):
    viewer, widget, image = scene
    neurons = viewer.add_labels(_segmentation(image.data.shape), name="neurons")
    widget.mask_layer = neurons
    widget.z = 2
    questions = []
    widget.confirm = lambda q: questions.append(q) or False
    widget.repair_current_slice()
    assert not widget.running and len(questions) == 1 and "on this slice" in questions[0]
    assert widget.status.startswith("Slice 2 was not repaired")


def test_result_on_top_before_after_and_the_confidence_overlay(scene, qtbot):
    viewer, widget, image = scene
    mask = widget.new_mask()
    mask.data[2][HOLE] = 1
    widget.z = 2
    bar = widget["progress_bar"].native
    assert bar.isHidden()
    widget.repair_current_slice()
    assert not bar.isHidden()  # the widget's own bar, while it runs
    _wait(qtbot, widget)
    assert bar.isHidden()
    names = [layer.name for layer in viewer.layers]
    # the mask stays on top, visible and paintable
    assert names == ["em", "em repaired", "em confidence", "em damage mask"]
    result, conf = viewer.layers["em repaired"], viewer.layers["em confidence"]
    assert result.visible and not conf.visible
    assert conf.colormap.name == CONFIDENCE_COLORMAP.name and conf.blending == "translucent"
    assert tuple(conf.contrast_limits) == (0.0, 1.0)
    widget["show_result"].value = False  # before
    assert not result.visible and "original" in widget.status
    widget["show_result"].value = True  # after
    widget["show_confidence"].value = True
    assert result.visible and conf.visible and "least reliable" in widget.status
    # a later repair keeps both layers, and the toggles' state
    mask.data[3][HOLE] = 1
    widget.z = 3
    widget.repair_current_slice()
    _wait(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == names and conf.visible
    assert np.asarray(conf.data[3])[HOLE].mean() < 1


def test_warning_style_goes_once_the_problem_is_fixed(scene):
    viewer, widget, image = scene
    widget.repair_current_slice()  # no mask yet
    assert "No damage mask" in widget.status
    assert "color" in widget["status_label"].native.styleSheet()
    widget.new_mask()
    assert widget["status_label"].native.styleSheet() == ""


def _detector_bundled() -> bool:
    from napari_flowinpaint.engine import bundled_detector_path

    return bundled_detector_path() is not None


@pytest.mark.skipif(not _detector_bundled(), reason="no bundled detector weights")
def test_auto_detect_is_one_undo_step(scene, qtbot):
    viewer, widget, image = scene
    data = image.data.copy()
    data[2] = 255  # a missing slice
    data[4][HOLE] = 255  # and a hole
    image.data = data
    mask = widget.new_mask()
    mask.data[1][:4, :4] = 2  # the user's own strokes stay, and stay after the undo
    before = mask.data.copy()
    widget["detect_scope"].value = "all slices"
    widget.ask = lambda q: "add"
    widget.auto_detect()
    _wait(qtbot, widget)
    assert (mask.data[2] > 0).all() and (mask.data[4][HOLE] > 0).mean() > 0.8
    mask.undo()  # Ctrl-Z: the whole proposal goes in one step
    np.testing.assert_array_equal(mask.data, before)


def test_old_warning_toasts_close_once_the_problem_is_fixed(scene, monkeypatch):
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    class Toast:  # stands for a toast napari shows when its window is on screen
        def __init__(self, text):
            self.message = type("M", (), {"text": lambda _self: text})()
            self.closed = False

        def close(self):
            self.closed = True

    viewer, widget, image = scene
    widget.repair_current_slice()  # no mask yet: a warning
    warned = Toast(widget.status)
    other = Toast("a toast of another plugin")
    monkeypatch.setattr(NapariQtNotification, "_instances", [warned, other])
    widget.new_mask()  # fixed: the widget's own warning toast goes, others stay
    assert warned.closed and not other.closed
