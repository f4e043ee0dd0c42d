"""The fine-tune dialog's before/after check, shown from a RepairExample (no training here:
the whole run is driven in test_finetune_widget.py)."""

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari_flowinpaint.gui import FinetuneWidget, RepairWidget  # noqa: E402
from napari_flowinpaint.gui._finetune_check import (  # noqa: E402
    CHECK_PANELS,
    check_layers,
    check_note,
    show_check,
)
from napari_flowinpaint.tasks.training import RepairExample  # noqa: E402


def _example(seed: int, *, after: bool = True) -> RepairExample:
    rng = np.random.default_rng(seed)
    crop = lambda: rng.integers(0, 256, (24, 32)).astype(np.uint8)  # noqa: E731
    mask = np.zeros((24, 32), bool)
    mask[5:15, 8:20] = True
    return RepairExample(6, 10, 40, crop(), crop(), mask, crop(), crop() if after else None,
                         21.25 + seed, 22.5 + seed if after else None)


@pytest.fixture
def viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 60, 90), np.uint8), name="em", scale=(40.0, 5.0, 5.0),
                     translate=(0.0, 100.0, 200.0), contrast_limits=(10, 240))
    viewer.add_labels(np.zeros((8, 60, 90), np.uint8), name="mask")
    return viewer


def test_the_check_sits_beside_the_stack_and_names_each_panel(viewer):
    image, mask = viewer.layers["em"], viewer.layers["mask"]
    assert viewer.layers.selection.active is mask
    ex = _example(0)
    panels = show_check(viewer, image, ex)
    assert [p.name for p in panels] == [f"fine-tune check: {n}" for n, _ in CHECK_PANELS]
    lefts = []
    for panel, (_, attribute) in zip(panels, CHECK_PANELS, strict=True):
        np.testing.assert_array_equal(panel.data, getattr(ex, attribute))
        assert tuple(panel.scale) == (5.0, 5.0) and panel.contrast_limits == [10, 240]
        top, left = panel.translate
        assert top == 100.0 + 5.0 * ex.y  # level with the crop's rows
        lefts.append(left)
    # in a row, right of the stack (90 px wide), one crop width (32 px) and a gap apart
    assert lefts[0] > 200.0 + 5.0 * 90 and np.all(np.diff(lefts) > 5.0 * 32)
    captions = viewer.layers["fine-tune check: captions"]
    assert list(captions.text.values) == ["damaged", "before 21.2 dB", "after 22.5 dB",
                                          "truth"]
    # under the user's layers, the mask still the active one
    names = [layer.name for layer in viewer.layers]
    assert names.index("mask") > names.index("em") > names.index("fine-tune check: captions")
    assert viewer.layers.selection.active is mask
    # never offered as an input, and a new run's check is shown in the same layers
    repair, tune = RepairWidget(viewer), FinetuneWidget(viewer)
    for widget in (repair, tune):
        assert not set(check_layers(viewer)) & set(widget["image_choice"].choices)
    new = _example(1)
    again = show_check(viewer, image, new)
    assert len(check_layers(viewer)) == 5 and again == panels
    np.testing.assert_array_equal(viewer.layers["fine-tune check: after"].data, new.after)
    assert list(captions.text.values) == ["damaged", "before 22.2 dB", "after 23.5 dB",
                                          "truth"]
    viewer.layers.remove(captions)  # a part of the check deleted: it is made again
    show_check(viewer, image, new)
    assert len(check_layers(viewer)) == 5 and not set(panels) & set(viewer.layers)
    viewer.layers.selection.clear()  # nothing selected: nothing of the check is either
    show_check(viewer, image, _example(2))
    assert not viewer.layers.selection and viewer.layers.selection.active is None


def test_a_check_is_shown_only_for_a_run_with_both_repairs(viewer):
    image = viewer.layers["em"]
    stopped = SimpleNamespace(example=_example(2, after=False))  # stopped before "after"
    assert check_note(viewer, image, stopped) == "" and not check_layers(viewer)
    assert check_note(viewer, image, SimpleNamespace(before={}, after={})) == ""  # detector
    done = SimpleNamespace(example=_example(3))
    assert "slice 6" in check_note(viewer, image, done) and len(check_layers(viewer)) == 5
    viewer.layers.remove(image)  # the stack was closed while it ran: nothing to put beside
    assert check_note(viewer, image, SimpleNamespace(example=_example(4))) == ""
