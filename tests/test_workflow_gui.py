"""What a new user met in a real napari window (issue 27): the widgets fit a 1366 x 768
laptop screen, only stacks are offered as the image, paint on another Labels layer is never
ignored, a mask made for one image is not kept for another, Auto-detect tells its own
earlier proposals from the user's strokes, and the hover read-out over the confidence
overlay gives the confidence.

Run under an X server (pytest-xvfb starts Xvfb); each test builds a viewer.
"""

import numpy as np
import pytest
from _synth import moving_stack

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari.layers import Labels  # noqa: E402
from qtpy.QtWidgets import QApplication, QLabel, QScrollArea  # noqa: E402

import napari_flowinpaint.gui._detect as detect_module  # noqa: E402
from napari_flowinpaint.engine import FlowInpainter  # noqa: E402
from napari_flowinpaint.gui import BatchRepairWidget, FinetuneWidget, RepairWidget  # noqa: E402

HOLE = (slice(20, 44), slice(18, 46))
SCALE = (40.0, 5.0, 5.0)
#: A laptop screen, less what the desktop itself takes (a panel and the window's title bar).
SCREEN = (1366, 768 - 60)


def _settle():
    app = QApplication.instance()
    for _ in range(10):
        app.processEvents()


@pytest.fixture
def repair(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(moving_stack(5, (64, 64), step=1.5), name="em", scale=SCALE)
    widget = RepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    viewer.window.add_dock_widget(widget, name="Repair section")
    return viewer, widget, image


# ------------------------------------------------------------------------- layout
@pytest.mark.parametrize("batch", [False, True], ids=["repair+finetune", "all three"])
def test_the_widgets_fit_a_laptop_screen(make_napari_viewer, batch):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(moving_stack(5, (64, 64)), name="em")
    widgets = [RepairWidget(viewer), FinetuneWidget(viewer)] + (
        [BatchRepairWidget(viewer)] if batch else [])
    docks = [viewer.window.add_dock_widget(w, name=w.title) for w in widgets]
    window = viewer.window._qt_window
    _settle()
    hint = window.minimumSizeHint()
    assert hint.width() <= SCREEN[0] and hint.height() <= SCREEN[1], hint
    window.resize(*SCREEN)
    _settle()
    assert window.height() <= SCREEN[1]
    long = ("Repair stopped: the image 'a rather long image name from the microscope' was "
            "removed from the viewer; 12 of 40 slices repaired (1-12).")
    for widget, dock in zip(widgets, docks, strict=True):
        widget._set_status(long)
        _settle()
        area = dock.findChild(QScrollArea, "scroll area")
        assert area is not None and dock.isVisible()
        # everything can be scrolled to, nothing is cut at the right
        assert area.widget().minimumSizeHint().width() <= area.viewport().width()
        assert dock.height() >= 150  # a usable height each, not a sliver
        for label in area.widget().findChildren(QLabel):
            if label.isVisibleTo(area.widget()) and label.text():
                assert label.wordWrap() or label.sizeHint().width() <= label.width(), \
                    label.text()
        status = widget["status_label"].native
        assert status.wordWrap() and status.width() <= area.viewport().width()
        assert status.height() >= 2 * status.fontMetrics().height()  # wrapped, not cut
        assert widget["status_label"].tooltip == long  # the whole text on hover too


def test_advanced_options_fold_away_and_stay_reachable(repair):
    from superqt import QCollapsible

    _, widget, _ = repair
    fold = widget.native.findChild(QCollapsible)
    assert fold is not None and not fold.isExpanded()
    assert fold.isAncestorOf(widget["detect_grow"].native)
    assert fold.isAncestorOf(widget["repair_mode"].native)
    fold.expand(animate=False)
    assert fold.isExpanded()
    widget["detect_grow"].value = 5  # still a member of the widget
    assert widget["detect_grow"].value == 5


# ------------------------------------------------------------------------- choices
def test_only_grayscale_stacks_are_offered_as_the_image(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((5, 32, 32, 3), np.uint8), name="rgb", rgb=True)
    stack = viewer.add_image(moving_stack(5, (32, 32)), name="stack")
    viewer.layers.selection.active = viewer.layers["rgb"]  # even when it is selected
    for widget in (RepairWidget(viewer), FinetuneWidget(viewer), BatchRepairWidget(viewer)):
        assert [c for c in widget["image_choice"].choices if c is not None] == [stack]
        assert widget.image_layer is stack


def test_another_labels_layer_of_the_right_shape_is_offered_and_its_paint_used(repair):
    viewer, widget, image = repair
    small = viewer.add_labels(np.zeros((5, 32, 32), np.uint8), name="small")
    other = viewer.add_labels(np.zeros(image.data.shape, np.uint8), name="Labels")
    choices = widget["mask_choice"].choices
    assert other in choices and small not in choices
    assert widget.mask_layer is None  # never taken unasked...
    viewer.dims.set_point(0, 2 * SCALE[0])
    viewer.layers.selection.active = other
    other.brush_size = 10
    other.paint((2, 30, 30), 1)  # ... but painting on it makes it the mask
    assert widget.mask_layer is other
    assert widget.status.startswith("'Labels' is the damage mask now (you painted on it)")
    # paint on a Labels layer that is not the mask is never ignored silently
    mine = widget.new_mask()
    assert widget.mask_layer is mine
    other.paint((2, 40, 40), 1)
    assert widget.status == ("You painted on 'Labels', but the damage mask is "
                             "'em damage mask': pick 'Labels' in 'damage mask' to repair "
                             "with that paint.")


def test_a_mask_made_for_one_image_is_not_kept_for_another(repair):
    viewer, widget, image = repair
    mask = widget.new_mask()
    second = viewer.add_image(np.array(image.data), name="em2", scale=SCALE)
    widget.image_layer = second
    assert widget.mask_layer is None  # not 'em damage mask' for em2
    made = widget.new_mask()
    assert made.name == "em2 damage mask" and widget.mask_layer is made
    widget.image_layer = image
    assert widget.mask_layer is mask  # each image finds its own again


def test_auto_detect_tells_its_earlier_proposals_from_your_strokes(repair, qtbot,
                                                                  monkeypatch):
    def detector(stack, zs, grow=0, **_options):  # stands in for the learned detector
        for z in zs:
            found = np.zeros(stack.shape[1:], bool)
            found[HOLE] = z > 0
            yield z, found

    monkeypatch.setattr(detect_module, "iter_detect_damage", detector)
    monkeypatch.setattr(detect_module, "known_normal_area", lambda *a, **k: 0)
    viewer, widget, _ = repair
    viewer.dims.set_point(0, 0)
    questions = []
    widget.ask = lambda q: questions.append(q) or "add"
    widget.auto_detect("all slices")
    qtbot.waitUntil(lambda: not widget.running, timeout=20000)
    mask = widget.mask_layer
    assert [z for z in range(5) if mask.data[z].any()] == [1, 2, 3, 4]
    assert questions == []  # a new mask: nothing to ask
    widget.auto_detect("all slices")
    qtbot.waitUntil(lambda: not widget.running, timeout=20000)
    assert questions[-1] == ("Slices 1, 2, 3, 4 of 'em damage mask' already hold an earlier "
                             "Auto-detect proposal. Add the new proposal there too (the "
                             "earlier one is kept), or skip those slices?")
    viewer.dims.set_point(0, 3 * SCALE[0])
    viewer.layers.selection.active = mask
    mask.paint((3, 5, 5), 1)  # the user's stroke on slice 3
    viewer.dims.set_point(0, 0)
    widget.auto_detect("all slices")
    qtbot.waitUntil(lambda: not widget.running, timeout=20000)
    assert questions[-1].startswith("Slice 3 of 'em damage mask' holds damage you painted, "
                                    "and slices 1, 2, 4 an earlier Auto-detect proposal.")


# ------------------------------------------------------------------------- read-out
def test_the_hover_read_out_gives_the_confidence(repair, qtbot):
    viewer, widget, _ = repair
    mask = widget.new_mask()
    mask.data[2][HOLE] = 1
    viewer.dims.set_point(0, 2 * SCALE[0])
    widget.repair_current_slice()
    qtbot.waitUntil(lambda: not widget.running, timeout=20000)
    confidence = viewer.layers["em confidence"]
    assert viewer.layers.selection.active is mask  # still the layer painted on
    viewer.mouse_over_canvas = True
    viewer.cursor.position = (2 * SCALE[0], 30 * SCALE[1], 30 * SCALE[2])  # in the hole

    def read_out():
        status, _tooltip = viewer._calc_status_from_cursor()
        return status["coordinates"]

    assert "confidence" not in read_out()  # the overlay is off
    widget["show_confidence"].value = True
    value = float(np.asarray(confidence.data[2])[30, 30])
    assert 0 < value < 1
    assert read_out().endswith(f": 1; confidence {value:.2f}")
    viewer.cursor.position = (2 * SCALE[0], 5 * SCALE[1], 5 * SCALE[2])  # outside: sure
    assert read_out().endswith(": 0; confidence 1.00")
    widget["show_confidence"].value = False
    assert "confidence" not in read_out()
    assert isinstance(mask, Labels) and "get_status" not in vars(mask)  # as napari made it
