"""Bad input and faults in the two dock widgets (Repair section, Fine-tune weights).

Each case checks the exact outcome: the status text and the notification it raised, that
the user's layers are unchanged, that no worker is left running and that no exception
reached the Qt event loop. "Mid-run" windows come from slow fake engines (0.2 s a section,
and the sections after the first wait until the test has acted).

Run under an X server (pytest-xvfb starts Xvfb); each test builds a hidden viewer.
"""

import hashlib
import threading
import time

import numpy as np
import pytest
from _synth import moving_stack

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari.utils.notifications import NotificationSeverity as Sev  # noqa: E402
from qtpy.QtCore import QThreadPool  # noqa: E402
from qtpy.QtWidgets import QDockWidget  # noqa: E402

import napari_flowinpaint.gui._detect as detect_module  # noqa: E402
from napari_flowinpaint.engine import FlowInpainter  # noqa: E402
from napari_flowinpaint.gui import FinetuneWidget, RepairWidget  # noqa: E402

HOLE = (slice(20, 44), slice(18, 46))
BUSY = "A repair is already running; wait for it or press Cancel."


# ------------------------------------------------------------------------- helpers
#: Held until :func:`_settle`: the sections after the first wait here, so a test acts while
#: the second one is in progress, however slow the machine.
_GATES: list = []


@pytest.fixture(autouse=True)
def _open_gates():
    yield
    for gate in _GATES:
        gate.set()  # never leave a worker waiting
    _GATES.clear()


def _gate():
    gate = threading.Event()
    _GATES.append(gate)
    return gate


class _Slow(FlowInpainter):
    """The optical-flow stage, 0.2 s slower a section; the sections after the first also
    wait for the gate that :func:`_settle` opens."""

    def __init__(self):
        super().__init__(stages="initial_reference")
        self._gate, self._first = _gate(), True

    def inpaint(self, *args, **kwargs):
        time.sleep(0.2)
        if not self._first:
            self._gate.wait(20)
        self._first = False
        return super().inpaint(*args, **kwargs)


class _SlowDetector:
    """Stands in for iter_detect_damage: finds HOLE on every slice, 0.2 s each; the slices
    after the first also wait for the gate that :func:`_settle` opens."""

    def __init__(self):
        self._gate = _gate()

    def __call__(self, stack, zs, grow=0, **_options):
        for i, z in enumerate(zs):
            time.sleep(0.2)
            if i:
                self._gate.wait(20)
            found = np.zeros(stack.shape[1:], bool)
            found[HOLE] = True
            yield z, found


def _digest(layer) -> str:
    h = hashlib.sha256()
    for level in (layer.data if layer.multiscale else [layer.data]):
        arr = np.asarray(level)
        h.update(f"{arr.shape}{arr.dtype}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _digests(viewer) -> dict:
    """What the user holds: every layer's data, by name (a result layer is ours, not theirs)."""
    return {layer.name: _digest(layer) for layer in viewer.layers
            if not layer.name.endswith(("repaired", "confidence"))}


def _settle(qtbot, widget, timeout=20000):
    """Let the work go on (open the gates), wait for it to end; then no worker thread may be
    left."""
    for gate in _GATES:
        gate.set()
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)
    assert widget.worker is None
    assert QThreadPool.globalInstance().waitForDone(10000)
    assert QThreadPool.globalInstance().activeThreadCount() == 0


def _only(notes, severity):
    return [msg for sev, msg in notes if sev == severity]


def _painted(widget, zs):
    mask = widget.new_mask()
    for z in zs:
        mask.data[z][HOLE] = 1
    return mask


@pytest.fixture
def no_qt_errors(qtbot):
    """Fails the test if any exception reached the Qt event loop (sys.excepthook)."""
    with qtbot.capture_exceptions() as caught:
        yield caught
    assert not caught, [str(exc) for _, exc, _ in caught]


@pytest.fixture
def make_scene(make_napari_viewer):
    """A viewer with a 6 x 64 x 64 stack "em" and a docked Repair widget on ``engine``."""

    def make(engine=None, n=6):
        viewer = make_napari_viewer()
        image = viewer.add_image(moving_stack(n, (64, 64), step=1.5), name="em")
        widget = RepairWidget(viewer, inpainter=engine or FlowInpainter(
            stages="initial_reference"))
        viewer.window.add_dock_widget(widget, name="Repair section")
        return viewer, widget, image

    return make


# ------------------------------------------------------------------------- bad layers
STACK = moving_stack(5, (32, 32))
BAD_IMAGES = {
    "rgb": (dict(data=np.stack([STACK] * 3, axis=-1), rgb=True),
            "'bad' is an RGB image; EM images must be grayscale."),
    "2-D": (dict(data=STACK[0]), "'bad' is a single 2-D slice (shape (32, 32))"),
    "4-D": (dict(data=np.stack([STACK, STACK])), "'bad' is 4-D (shape (2, 5, 32, 32))"),
    "multiscale": (dict(data=[STACK, STACK[:, ::2, ::2]], multiscale=True),
                   "'bad' is multiscale; open its full-resolution level"),
    "one section": (dict(data=STACK[:1]), "'bad' has a single slice; there is no neighbour"),
    "uint32": (dict(data=STACK.astype(np.uint32)), "'bad' holds uint32 data, which cannot be "
                                                   "repaired; convert it to uint8, uint16 or"),
    "int64": (dict(data=STACK.astype(np.int64)), "'bad' holds int64 data, which cannot be "
                                                 "repaired"),
}
ACTIONS = ("repair_current_slice", "repair_all", "new_mask", "auto_detect")


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_bad_image_is_refused_with_a_message(make_napari_viewer, qtbot, notes, no_qt_errors,
                                             kind, action):
    kwargs, phrase = BAD_IMAGES[kind]
    viewer = make_napari_viewer()
    image = viewer.add_image(name="bad", **kwargs)
    shape = tuple(image.data.shape)
    mask = viewer.add_labels(np.ones(shape, np.uint8), name="damage")  # painted everywhere
    widget = RepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    viewer.window.add_dock_widget(widget)
    assert widget.image_layer is None  # a layer that cannot be repaired is not offered
    widget.mask_layer = mask
    before = _digests(viewer)

    getattr(widget, action)()
    _settle(qtbot, widget)
    assert widget.status.startswith("No image layer") and phrase in widget.status
    assert notes == [(Sev.WARNING, widget.status)]
    assert _digests(viewer) == before  # nothing changed, no layer added
    assert [layer.name for layer in viewer.layers] == ["bad", "damage"]


def test_image_choice_lists_only_images(make_napari_viewer, no_qt_errors):
    viewer = make_napari_viewer()
    stack = viewer.add_image(moving_stack(8, (32, 32)), name="stack")
    viewer.add_image(STACK[0], name="flat")
    viewer.add_image(STACK.astype(np.uint32), name="wide")
    labels = viewer.add_labels(np.zeros(stack.data.shape, np.uint8), name="labels")
    viewer.add_points(np.zeros((1, 3)), name="points")
    before = _digests(viewer)
    repair, tune = RepairWidget(viewer), FinetuneWidget(viewer)
    viewer.window.add_dock_widget(repair)
    viewer.window.add_dock_widget(tune)

    # both offer only the stacks they can work on (Repair says why the others are not
    # offered when none is left); a Labels layer is a mask, never an image
    assert [c for c in repair["image_choice"].choices if c is not None] == [stack]
    assert [c for c in repair["mask_choice"].choices if c is not None] == [labels]
    assert [c for c in tune["image_choice"].choices if c is not None] == [stack]
    assert [c for c in tune["damage_choice"].choices if c is not None] == [labels]
    for widget in (repair, tune):
        with pytest.raises(ValueError):
            widget.image_layer = labels
        assert widget.image_layer is not labels
    assert _digests(viewer) == before


@pytest.mark.parametrize("action", ["repair_current_slice", "repair_all"])
def test_nan_in_the_section_is_reported_for_that_slice(make_napari_viewer, qtbot, notes,
                                                       no_qt_errors, action):
    stack = moving_stack(5, (64, 64), dtype=np.float32)
    stack[3][2:6, 2:6] = np.nan  # outside the hole: cannot be repaired away
    viewer = make_napari_viewer()
    image = viewer.add_image(stack, name="em", contrast_limits=(0, 1))
    widget = RepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    viewer.window.add_dock_widget(widget)
    mask = _painted(widget, [1, 3])
    widget.z = 3
    before = _digests(viewer)

    getattr(widget, action)()
    _settle(qtbot, widget)
    (error,) = _only(notes, Sev.ERROR)
    assert error.startswith("Repair of slice 3 failed: ") and "NaN" in error
    if action == "repair_current_slice":
        assert widget.status == error
        assert "em repaired" not in viewer.layers
    else:  # slice 1 was repaired before slice 3 failed, and is kept
        assert widget.status == "stopped at slice 3 (see the error); 1 of 2 slices repaired (1)"
        result = viewer.layers["em repaired"]
        assert not np.array_equal(result.data[1], image.data[1])
        np.testing.assert_array_equal(np.delete(result.data, 1, 0), np.delete(image.data, 1, 0))
    assert _digests(viewer) == before
    assert mask.data[3].any() and widget["repair_button"].enabled


# ------------------------------------------------------------------------- mask problems
def _no_mask(viewer, widget):
    widget.mask_layer = None


def _other_shape(viewer, widget):
    small = viewer.add_labels(np.ones((6, 32, 32), np.uint8), name="small")
    assert small not in widget["mask_choice"].choices and widget.mask_layer is None


def _painted_elsewhere(viewer, widget):
    _painted(widget, [1])
    widget.z = 3


def _empty(viewer, widget):
    widget.new_mask()
    widget.z = 0


def _lazy(viewer, widget):
    import dask.array as da

    data = np.zeros((6, 64, 64), np.uint8)
    data[2][HOLE] = 1
    widget.mask_layer = viewer.add_labels(da.from_array(data, chunks=(1, 64, 64)), name="lazy")


MASK_CASES = [
    (_no_mask, "repair_current_slice",
     "No damage mask: press New mask and paint the damaged pixels."),
    (_no_mask, "repair_all", "No damage mask: press New mask and paint the damaged pixels."),
    (_other_shape, "repair_current_slice", "No damage mask: press New mask and paint the "
     "damaged pixels. (Not offered, not of the image's shape (6, 64, 64): 'small' has shape "
     "(6, 32, 32).)"),
    (_other_shape, "repair_all", "(Not offered, not of the image's shape (6, 64, 64): "
                                 "'small' has shape (6, 32, 32).)"),
    (_painted_elsewhere, "repair_current_slice",
     "No damage is painted on slice 3 of 'em damage mask'"),
    (_empty, "repair_current_slice", "No damage is painted on slice 0 of 'em damage mask'"),
    (_empty, "repair_all", "No damage is painted anywhere in 'em damage mask'"),
    (_lazy, "auto_detect", "The mask 'lazy' is read-only lazy data (only numpy and zarr masks "
                           "can be written); press New mask"),
]


@pytest.mark.parametrize(("setup", "action", "phrase"), MASK_CASES,
                         ids=[f"{s.__name__[1:]}-{a}" for s, a, _ in MASK_CASES])
def test_mask_problems_are_refused_with_a_message(make_scene, qtbot, notes, no_qt_errors,
                                                  setup, action, phrase):
    viewer, widget, _ = make_scene()
    setup(viewer, widget)
    notes.clear()
    before = _digests(viewer)
    getattr(widget, action)()
    _settle(qtbot, widget)
    assert phrase in widget.status
    assert notes == [(Sev.WARNING, widget.status)]
    assert _digests(viewer) == before
    assert "em repaired" not in viewer.layers


def test_a_lazy_mask_repairs_and_is_never_written(make_scene, qtbot, notes, no_qt_errors):
    viewer, widget, image = make_scene()
    _lazy(viewer, widget)
    before = _digests(viewer)
    widget.repair_all()
    _settle(qtbot, widget)
    assert widget.status.startswith("1 slice repaired (2) by optical flow only in ")
    assert notes == [(Sev.INFO, widget.status)]
    assert _digests(viewer) == before
    result = viewer.layers["em repaired"].data
    np.testing.assert_array_equal(np.delete(result, 2, 0), np.delete(image.data, 2, 0))


# ------------------------------------------------------------------------- during a run
def _start_and_wait_for_first(qtbot, widget, n=4):
    widget.repair_all()
    assert widget.running and widget["cancel_button"].enabled
    qtbot.waitUntil(lambda: f"(1 of {n})" in widget.status, timeout=10000)


def test_image_removed_before_any_result(make_scene, qtbot, notes, no_qt_errors):
    viewer, widget, image = make_scene(_Slow())
    mask = _painted(widget, [1, 2, 3, 4])
    painted, original = mask.data.copy(), image.data.copy()
    widget.repair_all()
    # the worker reads the mask first, then starts on the 4 painted slices (0.2 s each)
    qtbot.waitUntil(lambda: widget.status == "Repairing 4 slices...", timeout=10000)
    viewer.layers.remove(image)
    assert widget.status == "Stopping: the image 'em' was removed from the viewer..."
    _settle(qtbot, widget)
    text = "Repair stopped: the image 'em' was removed from the viewer; 0 of 4 slices repaired."
    assert widget.status == text and notes == [(Sev.WARNING, text)]
    assert [layer.name for layer in viewer.layers] == ["em damage mask"]  # no result made
    np.testing.assert_array_equal(image.data, original)
    np.testing.assert_array_equal(mask.data, painted)


def test_image_removed_mid_run_keeps_what_was_done(make_scene, qtbot, notes, no_qt_errors):
    viewer, widget, image = make_scene(_Slow())
    mask = _painted(widget, [1, 2, 3, 4])
    painted, original = mask.data.copy(), image.data.copy()
    _start_and_wait_for_first(qtbot, widget)
    result = viewer.layers["em repaired"]
    viewer.layers.remove(image)
    _settle(qtbot, widget)
    text = ("Repair stopped: the image 'em' was removed from the viewer; 1 of 4 slices "
            "repaired (1).")
    assert widget.status == text and notes == [(Sev.WARNING, text)]
    # the result made before is kept as it was; slice 2, finished after, is dropped
    assert [layer.name for layer in viewer.layers] == ["em repaired", "em confidence",
                                                       "em damage mask"]
    assert viewer.layers["em repaired"] is result
    assert not np.array_equal(result.data[1], original[1])
    np.testing.assert_array_equal(result.data[2:], original[2:])
    np.testing.assert_array_equal(image.data, original)
    np.testing.assert_array_equal(mask.data, painted)


def test_image_removed_during_repair_slice(make_scene, qtbot, notes, no_qt_errors):
    viewer, widget, image = make_scene(_Slow())
    _painted(widget, [2])
    widget.z = 2
    widget.repair_current_slice()
    viewer.layers.remove(image)
    _settle(qtbot, widget)
    text = "Repair stopped: the image 'em' was removed from the viewer; 0 of 1 slice repaired."
    assert widget.status == text and notes == [(Sev.WARNING, text)]
    assert "em repaired" not in viewer.layers


def test_image_data_replaced_mid_run(make_scene, qtbot, notes, no_qt_errors):
    viewer, widget, image = make_scene(_Slow())
    _painted(widget, [1, 2, 3, 4])
    _start_and_wait_for_first(qtbot, widget)
    new = moving_stack(6, (48, 48), seed=3)
    image.data = new
    _settle(qtbot, widget)
    text = ("Repair stopped: the data of the image 'em' were replaced; 1 of 4 slices "
            "repaired (1).")
    assert widget.status == text and notes == [(Sev.WARNING, text)]
    np.testing.assert_array_equal(image.data, moving_stack(6, (48, 48), seed=3))
    assert viewer.layers["em repaired"].data.shape == (6, 64, 64)


def test_result_layer_removed_mid_run_is_not_recreated(make_scene, qtbot, notes, no_qt_errors):
    viewer, widget, image = make_scene(_Slow())
    _painted(widget, [1, 2, 3, 4])
    before = _digests(viewer)
    _start_and_wait_for_first(qtbot, widget)
    viewer.layers.remove("em repaired")
    _settle(qtbot, widget)
    text = ("Repair stopped: the layer 'em repaired' was removed from the viewer; 1 of 4 "
            "slices repaired (1).")
    assert widget.status == text and notes == [(Sev.WARNING, text)]
    assert "em repaired" not in viewer.layers
    assert _digests(viewer) == before


def test_mask_removed_mid_run_repairs_from_the_snapshot(make_scene, qtbot, notes,
                                                        no_qt_errors):
    viewer, widget, image = make_scene(_Slow())
    mask = _painted(widget, [1, 2, 3, 4])
    painted, original = mask.data.copy(), image.data.copy()
    _start_and_wait_for_first(qtbot, widget)
    viewer.layers.remove(mask)
    assert widget.mask_layer is None
    _settle(qtbot, widget)
    assert widget.status.startswith("4 slices repaired (1, 2, 3, 4) by optical flow only in ")
    assert notes == [(Sev.INFO, widget.status)]
    result = viewer.layers["em repaired"].data
    for z in range(6):
        assert np.array_equal(result[z], original[z]) == (z in (0, 5)), z
    np.testing.assert_array_equal(image.data, original)
    np.testing.assert_array_equal(mask.data, painted)


def test_cancel_pressed_twice(make_scene, qtbot, notes, no_qt_errors):
    viewer, widget, image = make_scene(_Slow())
    _painted(widget, [1, 2, 3, 4])
    before = _digests(viewer)
    _start_and_wait_for_first(qtbot, widget)
    widget["cancel_button"].native.click()
    assert widget.status == "Stopping after the current slice..."
    assert not widget["cancel_button"].enabled
    widget["cancel_button"].native.click()  # disabled: nothing happens
    widget.cancel()  # and called directly: nothing more either
    assert widget.status == "Stopping after the current slice..."
    _settle(qtbot, widget)
    text = ("stopped: 2 of 4 slices repaired (1, 2) by optical flow only; the rest are "
            "unchanged")
    assert widget.status == text and notes == [(Sev.INFO, text)]
    assert _digests(viewer) == before
    assert widget["repair_button"].enabled and not widget["cancel_button"].enabled
    widget.cancel()  # idle: nothing to stop
    assert widget.status == text


@pytest.mark.parametrize("action", ["repair_current_slice", "repair_all", "auto_detect",
                                    "click"])
def test_repair_pressed_while_running_is_refused(make_scene, qtbot, notes, no_qt_errors,
                                                 action):
    viewer, widget, image = make_scene(_Slow())
    _painted(widget, [1, 2, 3, 4])
    widget.z = 2
    before = _digests(viewer)
    widget.repair_all()
    worker = widget.worker
    if action == "click":  # the buttons are disabled while it runs
        assert not widget["repair_button"].enabled
        widget["repair_button"].native.click()
        assert not _only(notes, Sev.WARNING)
    else:
        getattr(widget, action)()
        assert widget.status == BUSY and notes == [(Sev.WARNING, BUSY)]
    assert widget.worker is worker
    _settle(qtbot, widget)
    assert widget.status.startswith("4 slices repaired (1, 2, 3, 4)")
    assert _digests(viewer) == before


def test_repair_pressed_while_auto_detect_runs(make_scene, qtbot, notes, no_qt_errors,
                                               monkeypatch):
    monkeypatch.setattr(detect_module, "iter_detect_damage", _SlowDetector())
    _skip_learning(monkeypatch)
    viewer, widget, image = make_scene()
    original = image.data.copy()
    widget.auto_detect("all slices")
    mask = viewer.layers["em damage mask"]
    widget.repair_all()
    text = "Auto-detect is already running; wait for it or press Cancel."
    assert widget.status == text and notes == [(Sev.WARNING, text)]
    _settle(qtbot, widget)
    assert widget.status.startswith("damage found on 6 of 6 slices checked (0, 1, 2, 3, 4, 5)")
    assert (mask.data[:, HOLE[0], HOLE[1]] == 1).all()
    np.testing.assert_array_equal(image.data, original)
    assert "em repaired" not in viewer.layers


def test_mask_removed_during_auto_detect(make_scene, qtbot, notes, no_qt_errors,
                                         monkeypatch):
    monkeypatch.setattr(detect_module, "iter_detect_damage", _SlowDetector())
    _skip_learning(monkeypatch)
    viewer, widget, image = make_scene()
    before = _digests(viewer)
    widget.auto_detect("all slices")
    mask = viewer.layers["em damage mask"]
    qtbot.waitUntil(lambda: "checked slice 0" in widget.status, timeout=10000)
    viewer.layers.remove(mask)
    _settle(qtbot, widget)
    text = ("Auto-detect stopped: the mask 'em damage mask' was removed from the viewer; "
            "damage found on 1 of 1 slice checked (0).")
    assert widget.status == text and notes == [(Sev.WARNING, text)]
    assert not mask.data[1:].any()  # nothing written after it left
    assert _digests(viewer) == before


def test_closing_the_widget_stops_the_repair(make_scene, qtbot, notes, no_qt_errors):
    viewer, widget, image = make_scene(_Slow())
    _painted(widget, [1, 2, 3, 4])
    before = _digests(viewer)
    _start_and_wait_for_first(qtbot, widget)
    widget.close()
    _settle(qtbot, widget)
    text = ("Repair stopped: the Repair section widget was closed; 2 of 4 slices repaired "
            "(1, 2).")
    assert widget.status == text and notes == [(Sev.WARNING, text)]
    assert _digests(viewer) == before


def test_undocking_the_widget_stops_the_repair(make_scene, qtbot, notes, no_qt_errors):
    viewer, widget, image = make_scene(_Slow())
    _painted(widget, [1, 2, 3, 4])
    _start_and_wait_for_first(qtbot, widget)
    dock = widget.native.parent()
    while not isinstance(dock, QDockWidget):
        dock = dock.parent()
    viewer.window.remove_dock_widget(dock)  # what the dock's close button does
    assert widget.native.parent() is None
    _settle(qtbot, widget)
    assert widget.status == ("Repair stopped: the Repair section widget was closed; 2 of 4 "
                             "slices repaired (1, 2).")


@pytest.mark.parametrize("job", ["repair", "auto_detect"])
def test_closing_the_viewer_mid_run(make_scene, qtbot, notes, no_qt_errors, monkeypatch, job):
    monkeypatch.setattr(detect_module, "iter_detect_damage", _SlowDetector())
    _skip_learning(monkeypatch)
    viewer, widget, image = make_scene(_Slow())
    original = image.data.copy()
    if job == "repair":
        _painted(widget, [1, 2, 3, 4])
        _start_and_wait_for_first(qtbot, widget)
    else:
        widget.auto_detect("all slices")
        qtbot.waitUntil(lambda: "checked slice 0" in widget.status, timeout=10000)
    viewer.close()
    _settle(qtbot, widget)
    qtbot.wait(50)  # let anything queued run
    assert len(viewer.layers) == 0  # nothing added to the closed viewer
    assert not notes  # nothing shown for a viewer that is gone
    np.testing.assert_array_equal(image.data, original)


# ------------------------------------------------------------------------- fine-tune widget
@pytest.fixture
def tune(make_napari_viewer, tmp_path):
    """A viewer with an 8 x 64 x 64 stack and the Fine-tune widget (fast scoring)."""
    viewer = make_napari_viewer()
    viewer.add_image(moving_stack(8, (64, 64)), name="em")
    widget = FinetuneWidget(viewer, score_samples=1)
    viewer.window.add_dock_widget(widget, name="Fine-tune weights")
    widget["iterations"].value = 50
    widget["output_file"].value = tmp_path / "mine.safetensors"
    return viewer, widget


def _tiff(tmp_path):
    path = tmp_path / "stack.tif"
    path.write_bytes(b"II*\0" + bytes(range(200)))
    return path


def _fake_weights(tmp_path):
    path = tmp_path / "old.safetensors"
    path.write_bytes(b"not weights at all")
    return path


def _old_weights(tmp_path):
    path = tmp_path / "old.safetensors"
    path.write_bytes(len(b"{}").to_bytes(8, "little") + b"{}")  # an empty safetensors file
    return path


def _json_in_the_way(tmp_path):
    (tmp_path / "new.json").write_text('{"mine": 1}')
    return tmp_path / "new.safetensors"


def _under_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    return tmp_path / "afile" / "deeper" / "w.safetensors"


def _under_sys(tmp_path):
    import tempfile

    try:
        with tempfile.TemporaryFile(dir="/sys"):
            pass
    except OSError:  # not even root may write there: the missing folders cannot be made
        return "/sys/flowinpaint-missing/a/w.safetensors"
    pytest.skip("needs a folder nobody may write in (/sys on Linux)")


def _no_suffix(tmp_path):
    path = tmp_path / "stack"
    path.write_bytes(b"user data")
    return path


OUTPUT_CASES = [
    (lambda tmp: tmp, "is a folder; choose a file in it"),
    (_under_a_file, "afile is a file, not a folder. Choose another output."),
    (_under_sys, "Cannot write to the folder /sys"),
    (_tiff, "stack.tif already exists and is not a weights file (.safetensors)"),
    (_no_suffix, "stack already exists and is not a weights file"),
    (_fake_weights, "old.safetensors already exists and is not a weights file"),
    (_old_weights, "old.safetensors already exists; choose a new file name, or delete the old "
                   "weights first."),
    (_json_in_the_way, "new.json already exists, where the description of the weights (.json) "
                       "would go"),
]


@pytest.mark.parametrize(("output", "phrase"), OUTPUT_CASES,
                         ids=["folder", "under-a-file", "unwritable", "tiff", "no-suffix",
                              "fake-weights", "old-weights", "json-in-the-way"])
def test_finetune_refuses_a_bad_output(tune, tmp_path, qtbot, notes, no_qt_errors, output,
                                       phrase):
    viewer, widget = tune
    out = output(tmp_path)
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    before = _digests(viewer)
    widget["output_file"].value = out
    widget["start_button"].native.click()
    _settle(qtbot, widget)
    assert phrase in widget.status
    assert notes == [(Sev.WARNING, widget.status)]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files
    assert not list(tmp_path.rglob("*.run"))
    assert _digests(viewer) == before and widget.result is None


def test_finetune_without_a_usable_image(make_napari_viewer, tmp_path, qtbot, notes,
                                         no_qt_errors):
    viewer = make_napari_viewer()
    widget = FinetuneWidget(viewer, score_samples=1)
    viewer.window.add_dock_widget(widget)
    widget["output_file"].value = tmp_path / "w.safetensors"
    usage = ("No 3-D image layer to fine-tune on: open a grayscale stack (z, y, x), or File > "
             "Open Sample > FIB-SEM medulla sample, and pick it in the widget.")
    widget.start()
    assert widget.status == usage
    viewer.add_image(moving_stack(8, (64, 64)).astype(np.uint32), name="wide")
    assert widget.image_layer is None  # not offered
    before = _digests(viewer)
    widget.start()
    _settle(qtbot, widget)
    assert widget.status == usage + " ('wide' is uint32 data (uint8, uint16 or float32 needed).)"
    assert notes == [(Sev.WARNING, usage), (Sev.WARNING, widget.status)]
    assert _digests(viewer) == before and not list(tmp_path.iterdir())


def test_finetune_cancel_twice_while_scoring_and_start_while_running(tune, tmp_path, qtbot,
                                                                     notes, no_qt_errors):
    viewer, widget = tune
    before = _digests(viewer)
    widget["start_button"].native.click()
    assert widget.running
    widget.start()
    busy = "Fine-tuning is already running; wait for it or press Cancel."
    assert widget.status == busy
    widget["cancel_button"].native.click()
    assert not widget["cancel_button"].enabled
    widget.cancel()
    _settle(qtbot, widget, timeout=60000)
    text = ("Stopped while scoring the starting weights; nothing was trained. Press Start to "
            "begin again.")
    assert widget.status == text
    assert notes == [(Sev.WARNING, busy), (Sev.INFO, text)]
    assert widget.result.weights is None and widget.result.iterations == 0
    assert not (tmp_path / "mine.safetensors").exists()
    assert _digests(viewer) == before
    assert widget["start_button"].enabled and not widget["use_button"].enabled


@pytest.mark.parametrize("close", ["widget", "viewer"])
def test_closing_stops_the_finetuning(tune, tmp_path, qtbot, notes, no_qt_errors, close):
    viewer, widget = tune
    image = viewer.layers["em"]
    original = image.data.copy()
    widget["start_button"].native.click()
    assert widget.running
    if close == "widget":
        widget.close()
    else:
        viewer.close()
    _settle(qtbot, widget, timeout=60000)
    qtbot.wait(50)
    np.testing.assert_array_equal(image.data, original)
    assert not (tmp_path / "mine.safetensors").exists()
    if close == "widget":
        text = ("Stopped while scoring the starting weights; nothing was trained. Press Start "
                "to begin again.")
        assert widget.status == text and notes == [(Sev.INFO, text)]
    else:
        assert not notes


def _skip_learning(monkeypatch):
    """With a stand-in detector, what is normal for the stack is not learned (it would run
    the real detector): taken as known, 0."""
    monkeypatch.setattr(detect_module, "stack_reference", lambda stack, weights: ((0, 1), (0, 1)))
    monkeypatch.setattr(detect_module, "known_normal_area", lambda stack, **options: 0)
