"""The "Fine-tune weights" dock widget, driving tasks.training.finetune on a small real stack.

Run under an X server (pytest-xvfb starts Xvfb); each test builds a hidden viewer.
"""

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari.utils.notifications import NotificationSeverity  # noqa: E402

import napari_flowinpaint.gui._finetune_widget as finetune_module  # noqa: E402
from napari_flowinpaint.engine import FlowInpainter  # noqa: E402
from napari_flowinpaint.gui import FinetuneWidget, RepairWidget  # noqa: E402

MANIFEST = Path(__file__).parents[1] / "src" / "napari_flowinpaint" / "napari.yaml"
SAMPLE = Path(__file__).parents[1] / "src" / "napari_flowinpaint" / "data" / \
    "fibsem_medulla_sample.tif"
SCALE = (40.0, 10.0, 10.0)


@pytest.fixture(scope="module")
def stack():
    """The bundled FIB-SEM sample, cropped to 12 x 128 x 128 to keep the runs short."""
    import tifffile

    return tifffile.imread(SAMPLE)[:12, :128, :128].copy()


@pytest.fixture
def scene(make_napari_viewer, stack, tmp_path, monkeypatch):
    """A viewer with the stack, a known-damage mask and the widget docked (fast scoring),
    and no starting score kept from an earlier test."""
    from napari_flowinpaint.tasks.training import scoring

    monkeypatch.setattr(scoring, "_MEMORY", {})
    viewer = make_napari_viewer()
    image = viewer.add_image(stack.copy(), name="em", scale=SCALE)
    widget = FinetuneWidget(viewer, score_samples=1)
    viewer.window.add_dock_widget(widget, name="Fine-tune weights")
    widget["spacing"].value = 1
    widget["output_file"].value = tmp_path / "mine.safetensors"
    return viewer, widget, image


def _wait(qtbot, widget, timeout=60000):
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def _warnings(notes):
    return [msg for sev, msg in notes if sev == NotificationSeverity.WARNING]


def test_finetune_reports_psnr_and_feeds_the_repair_widget(scene, qtbot, tmp_path,
                                                           monkeypatch, notes):
    viewer, widget, image = scene
    original = image.data.copy()
    damage = viewer.add_labels(np.zeros(image.data.shape, np.uint8), name="known damage")
    damage.data[3][10:40, 10:40] = 1
    painted = damage.data.copy()
    widget.damage_layer = damage
    widget.image_layer = image
    repair = RepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    viewer.window.add_dock_widget(repair, name="Repair section")
    calls, real = [], finetune_module.finetune

    def spy(*args, **kwargs):  # the real finetune, with its inputs recorded
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(finetune_module, "finetune", spy)

    shown, set_status = [], widget._set_status  # a magicgui Label emits no change events
    widget._set_status = lambda text, **kw: (shown.append(text), set_status(text, **kw))
    widget["iterations"].value = 4
    widget["start_button"].native.click()
    assert widget.running and widget["cancel_button"].enabled
    assert not widget["start_button"].enabled
    _wait(qtbot, widget)

    res = widget.result
    out = tmp_path / "mine.safetensors"
    assert res is not None and not res.stopped and res.iterations == 4
    assert res.weights == out and out.is_file() and out.stat().st_size > 0
    for value in (res.psnr_before, res.psnr_after):
        assert isinstance(value, float) and math.isfinite(value) and 5 < value < 60
    word, said = finetune_module.verdict(res.change)
    assert widget.status.startswith(said) and str(out) in widget.status
    assert said.startswith(f"{word.capitalize()}: {res.change.mean:+.2f} dB (95 % interval "
                           f"{res.change.low:+.2f} to {res.change.high:+.2f}) over 3 test "
                           "repairs")
    assert f"of slices {res.held_out[0]}-{res.held_out[-1]}" in widget.status
    assert f"mean {res.psnr_after:.2f} dB against {res.psnr_before:.2f} dB" in widget.status
    # progress in every phase, in the status line and the widget's own bar
    assert shown[0].startswith("Scoring the starting weights on the last slices of 'em', "
                               "then training the repair networks 4 iterations")
    for phase in ("Scoring the starting weights: test repair 1 of ",
                  "Training: iteration 4 of 4, loss ",
                  "Scoring the fine-tuned weights: test repair 1 of "):
        assert any(text.startswith(phase) for text in shown), (phase, shown)
    assert widget["progress_bar"].native.isHidden()
    # the live loss plot got every logged iteration; the output's whole path is shown
    assert widget.plot.steps and widget.plot.steps[-1] == 4
    assert widget["output_path"].value == str(out.resolve())
    # the layers went in as they are (the mask as damaged=), and came back untouched
    (kwargs,) = calls
    np.testing.assert_array_equal(kwargs["damaged"], painted)
    assert kwargs["iterations"] == 4 and kwargs["spacing"] == 1
    np.testing.assert_array_equal(image.data, original)
    np.testing.assert_array_equal(damage.data, painted)
    assert widget["start_button"].enabled and not widget["cancel_button"].enabled
    assert not [n for n in notes if n[0] >= NotificationSeverity.WARNING]
    # the before/after check: the scored test repair, beside the stack; the mask stays active
    ex = res.example
    panels = {name: viewer.layers[f"fine-tune check: {name}"]
              for name in ("damaged", "before", "after", "truth")}
    for name, layer in panels.items():
        np.testing.assert_array_equal(layer.data, getattr(ex, name))
        assert layer.data.shape == ex.truth.shape == (128, 128)
    np.testing.assert_array_equal(ex.truth, original[ex.z, ex.y:ex.y + 128, ex.x:ex.x + 128])
    assert not np.array_equal(ex.before[ex.mask], ex.after[ex.mask])  # 4 iterations apart
    assert f"Before/after of one test repair (slice {ex.z})" in widget.status
    assert viewer.layers.selection.active is damage
    assert panels["after"] not in widget["image_choice"].choices

    # "Use in Repair widget" is offered only for weights that scored better; the docked
    # Repair widget then builds its engine from the file
    assert widget["use_button"].enabled == (word == "better")
    widget.use_weights()
    engine = repair.inpainter
    assert engine.stages[-1] == "guided_inpainting"
    assert engine.weights.meta["finetuned_from"] == "bundled"
    assert widget.status == f"The Repair section widget now repairs with {out}."
    assert str(out) in repair.status


def test_cancel_while_scoring_stops_before_training(scene, qtbot, tmp_path):
    viewer, widget, image = scene
    widget["iterations"].value = 50
    widget["start_button"].native.click()
    widget["cancel_button"].native.click()  # the starting weights are being scored
    _wait(qtbot, widget)
    res = widget.result
    assert res.stopped and res.weights is None and res.iterations == 0
    assert res.psnr_before is None and res.psnr_after is None
    assert widget.status.startswith("Stopped while scoring the starting weights")
    assert not (res.run_dir / "checkpoint.pt").exists()
    assert not (tmp_path / "mine.safetensors").exists()
    assert widget["start_button"].enabled and not widget["cancel_button"].enabled


def test_cancel_stops_early_and_keeps_the_checkpoint(scene, qtbot, tmp_path):
    viewer, widget, image = scene
    original = image.data.copy()
    widget["iterations"].value = 50
    # press Cancel at the first progress report of the training
    widget._relay.info.connect(lambda info: info["phase"] == "training" and widget.cancel())
    widget["start_button"].native.click()
    _wait(qtbot, widget)
    res = widget.result
    assert res.stopped and res.weights is None and 1 <= res.iterations < 50
    assert math.isfinite(res.psnr_before)
    assert widget.status.startswith(f"Stopped at iteration {res.iterations}; the starting "
                                    f"weights score {res.psnr_before:.2f} dB")
    assert "resume" in widget.status and str(res.run_dir) in widget.status
    assert (res.run_dir / "checkpoint.pt").is_file()
    assert not (tmp_path / "mine.safetensors").exists()
    np.testing.assert_array_equal(image.data, original)
    # nothing to hand to the Repair widget; Start is available again
    assert not widget["use_button"].enabled
    assert widget.use_weights() == [] and "No fine-tuned weights yet" in widget.status
    assert widget["start_button"].enabled and not widget["cancel_button"].enabled


def test_bad_input_gives_messages(make_napari_viewer, qtbot, tmp_path, stack, notes):
    viewer = make_napari_viewer()
    widget = FinetuneWidget(viewer, score_samples=1)
    viewer.window.add_dock_widget(widget)
    widget["output_file"].value = tmp_path / "w.safetensors"
    # no image at all, then only a 2-D one (not offered)
    widget.start()
    assert "No 3-D image layer" in _warnings(notes)[-1] and not widget.running
    viewer.add_image(stack[0], name="flat")
    assert widget.image_layer is None
    widget.start()
    assert "'flat' is 2-D, shape (128, 128)" in widget.status
    assert widget.status == _warnings(notes)[-1]
    # an output whose folder cannot exist (a file is in the way), and a folder as output
    image = viewer.add_image(stack.copy(), name="em")
    assert widget.image_layer is image
    (tmp_path / "afile").write_text("x")
    widget["output_file"].value = tmp_path / "afile" / "w.safetensors"
    widget.start()
    assert "is a file, not a folder" in _warnings(notes)[-1] and not widget.running
    widget["output_file"].value = tmp_path
    widget.start()
    assert "is a folder" in widget.status and not widget.running
    assert not list(tmp_path.glob("*.run"))
    # a mask of another shape is not offered; what finetune refuses comes back as a
    # message: too few sections
    widget["output_file"].value = tmp_path / "w.safetensors"
    small = viewer.add_labels(np.zeros((12, 32, 32), np.uint8), name="small")
    assert small not in widget["damage_choice"].choices and widget.damage_layer is None
    image.data = stack[:5].copy()
    widget.start()
    _wait(qtbot, widget)
    assert widget.status.startswith("Fine-tuning failed: a stack of 5 sections is too short")
    assert widget.status == _warnings(notes)[-1]
    assert widget.result is None and widget["start_button"].enabled
    np.testing.assert_array_equal(image.data, stack[:5])
    # nothing of this reached napari as an error
    assert not [n for n in notes if n[0] >= NotificationSeverity.ERROR]


def test_manifest_registers_the_widget(make_napari_viewer):
    import npe2

    manifest = npe2.PluginManifest.from_file(MANIFEST)
    manifest.validate_imports()
    widgets = {w.display_name: w.command for w in manifest.contributions.widgets}
    assert widgets["Fine-tune weights"] == "napari-flowinpaint.finetune_widget"
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert commands["napari-flowinpaint.finetune_widget"] == \
        "napari_flowinpaint.gui:FinetuneWidget"
    # napari opens it from the Plugins menu entry
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-flowinpaint", "Fine-tune weights")
    assert isinstance(widget, FinetuneWidget)
    assert widget["iterations"].value == 300 and widget["spacing"].value == 1
    assert widget["output_file"].value.name == "flowinpaint-finetuned.safetensors"
    assert widget.use_weights() == []



@pytest.mark.parametrize("gains, word, offered, interval", [
    ([0.4, 0.5, 0.6, 0.5], "better", True, "+0.37 to +0.63"),
    ([0.9, -0.5, 0.8, -0.2], "no clear change", False, "-0.87 to +1.37"),  # noisy
    ([0.04, 0.06, 0.05, 0.05], "no clear change", False, "+0.04 to +0.06"),  # too small
    ([-0.9, -1.1, -1.0, -1.0], "worse", False, "-1.13 to -0.87")])
def test_the_verdict_never_recommends_worse_weights(make_napari_viewer, tmp_path, gains,
                                                    word, offered, interval):
    from napari_flowinpaint.tasks.evaluation import paired_change

    viewer = make_napari_viewer()
    widget = FinetuneWidget(viewer)
    change = paired_change([25.0] * 4, [25.0 + g for g in gains])
    result = finetune_module.FinetuneResult(
        tmp_path / "w.safetensors", 25.0, 25.0 + change.mean, (9, 10, 11), 300, False,
        tmp_path / "w.run", change, before_reused=True)
    widget._on_returned((result, None))
    assert widget.status.startswith(
        f"{word.capitalize()}: {change.mean:+.2f} dB (95 % interval {interval}) over 4 test "
        "repairs of slices 9-11, left out of the training (mean ")
    assert "starting score reused" in widget.status
    assert widget["use_button"].enabled == offered
    assert ("Press Use in Repair widget" in widget.status) == offered
    if word == "worse":
        assert "Do not use them" in widget.status
    elif word == "no clear change":
        assert "not clearly better" in widget.status


def test_a_reused_starting_score_is_said_while_it_runs(make_napari_viewer):
    widget = FinetuneWidget(make_napari_viewer())
    widget.worker, widget._returned, widget._running_target = object(), False, widget.target
    widget._phase = "before"
    widget._on_progress({"phase": "before", "step": 24, "total": 24, "reused": True})
    assert widget.status == "Starting score reused (24 test repairs scored in an earlier run)"
    widget.worker = None


def test_adapting_the_detector_feeds_auto_detect(scene, qtbot, tmp_path):
    viewer, widget, image = scene
    original = image.data.copy()
    widget.image_layer = image
    repair = RepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    viewer.window.add_dock_widget(repair, name="Repair section")
    widget.target = "damage detector"
    shown, set_status = [], widget._set_status
    widget._set_status = lambda text, **kw: (shown.append(text), set_status(text, **kw))
    widget["iterations"].value = 3
    widget["start_button"].native.click()
    _wait(qtbot, widget)
    res = widget.result
    out = tmp_path / "mine.safetensors"
    assert isinstance(res, finetune_module.DetectorFinetuneResult) and res.weights == out
    assert res.iterations == 3 and res.before is not None and res.after is not None
    for phase in ("Scoring the starting weights: scored slice 1 of ",
                  "Training: iteration 3 of 3, loss ",
                  "Scoring the fine-tuned weights: scored slice 1 of "):
        assert any(text.startswith(phase) for text in shown), (phase, shown)
    assert "of the real slices flagged" in widget.status and str(out) in widget.status
    assert widget.plot.steps and widget.plot.steps[-1] == 3
    np.testing.assert_array_equal(image.data, original)
    # the Repair widget's Auto-detect takes the adapted detector; its repairs are unchanged
    assert widget.use_weights() == [repair]
    assert repair._detector_weights == out and repair._weights is None
    assert widget.status == f"The Repair section widget now auto-detects with {out}."


def test_the_target_choice_sets_its_defaults(make_napari_viewer):
    widget = FinetuneWidget(make_napari_viewer())
    assert widget.target == "repair networks"
    widget.target = "damage detector"
    assert widget["iterations"].value == 200
    assert widget["output_file"].value.name == "flowinpaint-detector-adapted.safetensors"
    widget["iterations"].value = 50  # the user's own choices stay
    widget.target = "repair networks"
    assert widget["iterations"].value == 50
    assert widget["output_file"].value.name == "flowinpaint-finetuned.safetensors"
    with pytest.raises(ValueError, match="target must be one of"):
        widget.target = "everything"


@pytest.mark.parametrize("after, word", [
    (dict(false_alarms=0.2, false_pixels=0.001, f1=0.80), "better"),   # fewer alarms
    (dict(false_alarms=0.4, false_pixels=0.002, f1=0.80), "better"),   # fewer false pixels
    (dict(false_alarms=0.4, false_pixels=0.010, f1=0.80), "no change"),
    (dict(false_alarms=0.6, false_pixels=0.001, f1=0.90), "worse"),    # more alarms
    (dict(false_alarms=0.0, false_pixels=0.000, f1=0.70), "worse")])   # damage missed
def test_the_detector_verdict(after, word):
    from napari_flowinpaint.gui._finetune_text import detector_verdict

    before = dict(false_alarms=0.4, false_pixels=0.01, f1=0.80)
    got, said = detector_verdict(before, after)
    assert got == word and said.startswith(word.capitalize() + ": ")
    assert f"{after['false_alarms']:.0%} of the real slices flagged" in said


def test_spacing_and_output_follow_the_image(make_napari_viewer, stack, tmp_path):
    """The spacing comes from the layer's voxel size (serial sections 1, isotropic FIB-SEM
    4, no voxel size: left alone), the default output goes beside the image's file, and a
    choice the user made stays."""
    from napari.layers._source import layer_source

    from napari_flowinpaint.gui._finetune_widget import spacing_from_scale

    assert spacing_from_scale((50, 4, 4)) == 1  # ssTEM
    assert spacing_from_scale((40, 10, 10)) == 1  # the sample: every 4th FIB-SEM slice
    assert spacing_from_scale((10, 10, 10)) == 4  # isotropic FIB-SEM
    assert spacing_from_scale((1, 1, 1)) is None
    viewer = make_napari_viewer()
    src = tmp_path / "data" / "fib.tif"
    src.parent.mkdir()
    with layer_source(path=str(src)):
        fib = viewer.add_image(stack.copy(), name="fib", scale=(10, 10, 10))
    widget = FinetuneWidget(viewer)
    assert widget.image_layer is fib
    assert widget["spacing"].value == 4
    assert Path(widget["output_file"].value) == src.parent / "fib-finetuned.safetensors"
    plain = viewer.add_image(stack.copy(), name="plain")  # no voxel size, no file
    widget.image_layer = plain
    assert widget["spacing"].value == 4  # nothing to go by: left as it was
    widget["spacing"].value = 2  # the user's choice stays
    widget["output_file"].value = tmp_path / "mine.safetensors"
    widget.image_layer = fib
    assert widget["spacing"].value == 2
    assert Path(widget["output_file"].value) == tmp_path / "mine.safetensors"


def test_loss_plot_says_what_it_will_show_until_the_first_point(qtbot):
    from napari_flowinpaint.gui._loss_plot import LossPlot

    plot = LossPlot()
    assert plot._hint is not None and "training loss" in plot._hint.get_text()
    assert list(plot.axes.get_xticks()) == [] and list(plot.axes.get_yticks()) == []
    plot.add(5, 0.5)  # a run with one logged iteration: its point shows, from iteration 0
    assert plot._hint is None and plot._line.get_marker() == "o"
    low, high = plot.axes.get_ylim()
    assert low < 0.5 < high and plot.axes.get_xlim()[0] == 0 < 5 < plot.axes.get_xlim()[1]
    assert all(float(t).is_integer() for t in plot.axes.get_xticks())
    plot.add(10, 0.25)
    plot.redraw()
    assert len(plot.axes.get_yticks()) > 1 and plot.axes.get_ylim()[0] < 0.25
    plot.clear()
    assert plot._hint is not None
