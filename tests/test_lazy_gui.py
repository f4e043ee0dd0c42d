"""Whole volumes in the Repair widget: dask/zarr-backed images are read a section at a time.

The image is ``da.from_zarr`` over a zarr store written by ``write_stack``, read through a
store that counts the chunks it hands out (one chunk per section), so each test can say
exactly which sections were read. Run under an X server (pytest-xvfb starts Xvfb).
"""

import collections
import threading
import time

import numpy as np
import pytest
from _synth import moving_stack

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

import dask.array as da  # noqa: E402
import tifffile  # noqa: E402
import zarr  # noqa: E402
from napari.layers import Labels  # noqa: E402
from zarr.storage import LocalStore, WrapperStore  # noqa: E402

import napari_flowinpaint.gui._detect as detect_module  # noqa: E402
import napari_flowinpaint.gui._save as save_module  # noqa: E402
import napari_flowinpaint.gui._view as view_module  # noqa: E402
from napari_flowinpaint.engine import FlowInpainter  # noqa: E402
from napari_flowinpaint.gui import RepairedView, RepairWidget  # noqa: E402
from napari_flowinpaint.tasks.io import read_stack, read_voxel_size, write_stack  # noqa: E402

N, SIZE = 20, 256
HOLE = (slice(80, 176), slice(70, 180))
SCALE = (0.04, 0.005, 0.005)  # micrometres: saved as 40 x 5 x 5 nm
SECTION = SIZE * SIZE  # bytes of one uint8 section


class CountingStore(WrapperStore):
    """A zarr store that counts, per section, the chunks read from it."""

    def __init__(self, store):
        super().__init__(store)
        self.reads = collections.Counter()

    async def get(self, key, prototype, byte_range=None):
        if key.startswith("c/"):
            self.reads[int(key.split("/")[1])] += 1
        return await super().get(key, prototype, byte_range)


@pytest.fixture
def make_lazy(make_napari_viewer, tmp_path):
    """A viewer with a dask-backed 20 x 256 x 256 stack "em" (holes on 4, 10 and 15, the
    viewer at z = 10) and a docked Repair widget on ``engine`` (default: the optical-flow
    stage)."""

    def make(engine=None):
        truth = moving_stack(N, (SIZE, SIZE), step=1.5)
        damaged = truth.copy()
        for z in (4, 10, 15):
            damaged[z][HOLE] = 0
        path = write_stack(tmp_path / "em.zarr", damaged, voxel_size=(40, 5, 5))
        store = CountingStore(LocalStore(str(path), read_only=True))
        data = da.from_zarr(zarr.open_array(store=store, mode="r"))
        assert data.chunks[0] == (1,) * N  # one chunk per section: reads count sections
        viewer = make_napari_viewer()
        image = viewer.add_image(data, name="em", scale=SCALE, units="micrometer",
                                 contrast_limits=(0, 255))
        widget = RepairWidget(viewer, inpainter=engine or FlowInpainter(
            stages="initial_reference"))
        viewer.window.add_dock_widget(widget, name="Repair section")
        viewer.dims.set_point(0, 10 * SCALE[0])
        assert widget.z == 10
        return viewer, widget, image, store, damaged, truth

    return make


@pytest.fixture
def lazy(make_lazy):
    return make_lazy()


def _wait(qtbot, widget, timeout=30000):
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def _paint(widget, zs):
    mask = widget.new_mask()
    for z in zs:
        section = np.asarray(mask.data[z]).copy()
        section[HOLE] = 1
        mask.data[z] = section
    return mask


def _check_result(result, damaged, truth, repaired):
    view = result.data
    assert isinstance(view, RepairedView) and view.source is not None
    assert view.repaired == sorted(repaired)
    for z in range(N):
        if z in repaired:  # the hole is filled, the rest of the section is the original
            err = np.abs(view[z][HOLE].astype(float) - truth[z][HOLE]).mean()
            assert err < 6.0, (z, err)
            outside = np.ones((SIZE, SIZE), bool)
            outside[HOLE] = False
            np.testing.assert_array_equal(view[z][outside], damaged[z][outside])
        else:
            np.testing.assert_array_equal(view[z], damaged[z])


@pytest.fixture
def off_main_thread(monkeypatch):
    """Records, for each scan of a mask for painted slices, whether it ran on the main
    (GUI) thread."""
    seen = []
    real = view_module.painted_sections

    def recording(masks, census=None):
        seen.append(threading.current_thread() is threading.main_thread())
        yield from real(masks, census)

    monkeypatch.setattr(view_module, "painted_sections", recording)
    return seen


# ------------------------------------------------------------------------- repair
def test_repair_slice_reads_only_the_sections_it_needs(lazy, qtbot):
    viewer, widget, image, store, damaged, truth = lazy
    mask = _paint(widget, [10])
    assert isinstance(mask.data, np.ndarray)  # a small image keeps an in-memory mask
    store.reads.clear()
    widget["repair_button"].native.click()
    _wait(qtbot, widget)
    assert widget.status.startswith("slice 10 repaired from 9 and 11 by optical flow only")
    # the section, its two neighbours, and what the viewer shows (z = 10): never the stack
    assert set(store.reads) == {9, 10, 11}, store.reads
    result = viewer.layers["em repaired"]
    view = result.data
    # memory held by the result: the one repaired section, nothing of the source
    assert view.held_bytes == SECTION and view.store is None
    _check_result(result, damaged, truth, [10])
    # what the viewer shows is the repaired section
    np.testing.assert_array_equal(np.asarray(result._slice.image.raw), view[10])
    viewer.dims.set_point(0, 3 * SCALE[0])
    np.testing.assert_array_equal(np.asarray(result._slice.image.raw), damaged[3])
    np.testing.assert_allclose(result.scale, SCALE)


def test_repair_all_reads_sections_one_by_one(lazy, qtbot, off_main_thread):
    viewer, widget, image, store, damaged, truth = lazy
    _paint(widget, [4, 10, 15])
    store.reads.clear()
    widget["repair_all_button"].native.click()
    _wait(qtbot, widget)
    assert widget.status.startswith("3 slices repaired (4, 10, 15) by optical flow only")
    assert off_main_thread == [False]  # the mask was scanned in the worker
    # each painted section and its neighbours, a few times each; never the whole stack
    assert set(store.reads) <= {3, 4, 5, 9, 10, 11, 14, 15, 16}, store.reads
    assert sum(store.reads.values()) <= 3 * 9, store.reads
    view = viewer.layers["em repaired"].data
    assert view.held_bytes == 3 * SECTION and view.store is None
    _check_result(viewer.layers["em repaired"], damaged, truth, [4, 10, 15])


class _SlowInpainter(FlowInpainter):
    def inpaint(self, *args, **kwargs):
        time.sleep(0.3)
        return super().inpaint(*args, **kwargs)


def test_cancel_during_repair_all_keeps_what_is_done(make_lazy, qtbot):
    viewer, widget, image, store, damaged, truth = make_lazy(
        _SlowInpainter(stages="initial_reference"))
    _paint(widget, [2, 4, 10, 15])
    widget.repair_all()
    qtbot.waitUntil(lambda: "(1 of 4)" in widget.status, timeout=20000)
    widget.cancel()
    _wait(qtbot, widget)
    assert widget.status.startswith("stopped: "), widget.status
    done = [int(s) for s in widget.status.split("(")[1].split(")")[0].split(", ")]
    assert 1 <= len(done) < 4 and done == [2, 4, 10, 15][: len(done)]
    view = viewer.layers["em repaired"].data
    assert view.repaired == done and view.held_bytes == len(done) * SECTION
    for z in range(N):
        assert np.array_equal(view[z], damaged[z]) == (z not in done), z


def _unreadable_from_3(masks, census=None):
    """Stands in for painted_sections over a mask whose section 3 cannot be read."""
    for z in range(3):
        yield z, False
    raise OSError("chunk 3 is unreadable")


@pytest.mark.parametrize("job", ["repair_all", "auto_detect"])
def test_a_mask_section_that_cannot_be_read_is_named(lazy, qtbot, notes, monkeypatch, job):
    viewer, widget, image, *_ = lazy
    monkeypatch.setattr(view_module, "painted_sections", _unreadable_from_3)
    widget.new_mask()
    notes.clear()
    if job == "repair_all":
        widget.repair_all()
        text = "Reading slice 3 of the mask 'em damage mask' failed: OSError: chunk 3 is unreadable"
    else:
        widget.auto_detect("all slices")
        text = ("Auto-detect could not read slice 3 of the mask 'em damage mask': OSError: "
                "chunk 3 is unreadable")
    _wait(qtbot, widget)
    assert widget.status == text
    assert [msg for _, msg in notes] == [text]
    assert "em repaired" not in viewer.layers and not widget.running


def _slow_scan(masks, census=None):
    """Stands in for painted_sections: 0.1 s a section."""
    for z in range(masks.shape[0]):
        time.sleep(0.1)
        yield z, bool(np.asarray(masks[z]).any())


@pytest.mark.parametrize("job", ["repair_all", "auto_detect"])
def test_cancel_while_the_mask_is_scanned(lazy, qtbot, notes, monkeypatch, job):
    viewer, widget, image, *_ = lazy
    monkeypatch.setattr(view_module, "painted_sections", _slow_scan)
    mask = _paint(widget, [4, 10])
    before = np.asarray(mask.data).copy()
    widget.ask = lambda q: pytest.fail("nothing to ask: the scan was cancelled")
    notes.clear()
    widget.repair_all() if job == "repair_all" else widget.auto_detect("all slices")
    qtbot.waitUntil(lambda: "of 20 checked)..." in widget.status, timeout=10000)
    widget["cancel_button"].native.click()
    _wait(qtbot, widget)
    assert widget.status == ("Repair cancelled while finding the painted slices; nothing was "
                             "repaired." if job == "repair_all" else "Auto-detect cancelled.")
    assert not notes and "em repaired" not in viewer.layers
    np.testing.assert_array_equal(np.asarray(mask.data), before)


# ------------------------------------------------------------------------- big stacks
def test_big_lazy_stack_gets_a_zarr_mask_and_results_on_disk(lazy, qtbot, monkeypatch,
                                                             off_main_thread):
    viewer, widget, image, store, damaged, truth = lazy
    monkeypatch.setattr(view_module, "LAZY_BYTES", 1 << 20)  # 1.3 MB is "big" here
    mask = widget.new_mask()
    assert isinstance(mask, Labels) and isinstance(mask.data, zarr.Array)
    assert mask.data.shape == (N, SIZE, SIZE) and mask.data.dtype == np.uint8
    assert "kept on disk in a temporary folder" in widget.status
    # napari paints into it
    mask.brush_size = 9
    mask.paint((10, 128, 128), 1)
    assert np.asarray(mask.data[10])[124:133, 124:133].any()
    assert not np.asarray(mask.data[9]).any()
    section = np.asarray(mask.data[10]).copy()
    section[HOLE] = 1
    mask.data[10] = section

    widget.repair_all()
    _wait(qtbot, widget)
    assert widget.status.startswith("1 slice repaired (10) by optical flow only")
    assert off_main_thread == [False]
    view = viewer.layers["em repaired"].data
    # the repaired section went to a temporary zarr store: nothing held in memory
    assert view.store is not None and view.held_bytes == 0 and view.storage_path.exists()
    _check_result(viewer.layers["em repaired"], damaged, truth, [10])


def _fake_detector(stack, zs, grow=0, **_options):
    """Stands in for iter_detect_damage: finds HOLE on slices 4, 10 and 15."""
    for z in zs:
        found = np.zeros(stack.shape[1:], bool)
        if z in (4, 10, 15):
            found[HOLE] = True
        yield z, found


def test_auto_detect_fills_a_zarr_backed_mask(lazy, qtbot, monkeypatch, off_main_thread):
    viewer, widget, image, store, damaged, truth = lazy
    monkeypatch.setattr(view_module, "LAZY_BYTES", 1 << 20)
    monkeypatch.setattr(detect_module, "iter_detect_damage", _fake_detector)
    _skip_learning(monkeypatch)
    mask = widget.new_mask()
    assert isinstance(mask.data, zarr.Array)
    mask.data[15, 0:5, 0:5] = 2  # the user's own stroke
    questions = []
    widget.ask = lambda q: questions.append(q) or "skip"
    widget.auto_detect("all slices")
    _wait(qtbot, widget)
    assert off_main_thread == [False]  # painted slices were found in the worker
    assert len(questions) == 1 and "Slice 15 of 'em damage mask' already holds" in questions[0]
    assert widget.status.startswith("damage found on 2 of 19 slices checked (4, 10)")
    found = np.asarray(mask.data)
    assert (found[4][HOLE] == 1).all() and (found[10][HOLE] == 1).all()
    assert (found[15] > 0).sum() == 25  # skipped: only the stroke
    assert found.sum() == 2 * 96 * 110 + 25 * 2

    # the current slice: no question asked; the stroke is kept, the detection added
    widget.z = 15
    widget.auto_detect("current slice")
    _wait(qtbot, widget)
    assert len(questions) == 1
    section = np.asarray(mask.data[15])
    assert (section[0:5, 0:5] == 2).all() and (section[HOLE] == 1).all()

    # and it repairs from that mask
    widget.repair_all()
    _wait(qtbot, widget)
    assert widget.status.startswith("3 slices repaired (4, 10, 15)")


def test_a_read_only_mask_is_refused_by_auto_detect(lazy, notes):
    viewer, widget, image, *_ = lazy
    lazy_mask = da.zeros((N, SIZE, SIZE), dtype=np.uint8, chunks=(1, SIZE, SIZE))
    widget.mask_layer = viewer.add_labels(lazy_mask, name="dask mask")
    widget.auto_detect("current slice")
    assert not widget.running
    assert "The mask 'dask mask' is read-only lazy data" in widget.status


# ------------------------------------------------------------------------- saving
def test_save_result_writes_tiff_and_ome_zarr(lazy, qtbot, tmp_path, notes):
    viewer, widget, image, store, damaged, truth = lazy
    widget.save_result(tmp_path / "early.tif")
    assert widget.status.startswith("Nothing to save yet: repair a slice of 'em' first")
    _paint(widget, [10])
    widget.repair_current_slice()
    _wait(qtbot, widget)
    view = viewer.layers["em repaired"].data
    expected = np.asarray(view)
    store.reads.clear()

    for name in ("out.tif", "out.ome.zarr"):
        out = tmp_path / name
        widget.save_result(out)
        assert widget.running and not widget["save_button"].enabled
        _wait(qtbot, widget)
        assert widget.status.startswith(f"Saved 'em repaired' (20 slices) to {out} in "), \
            widget.status
        assert widget.status.endswith(", voxel size 40 x 5 x 5 nm.")
        np.testing.assert_array_equal(np.asarray(read_stack(out)), expected)
        assert read_voxel_size(out) == pytest.approx((40, 5, 5))
    # each section was read once per file, one at a time
    assert set(store.reads) == set(range(N)) - {10}
    assert max(store.reads.values()) <= 2
    assert view.repaired == [10] and view.held_bytes == SECTION

    # an existing file is replaced only when the user agrees
    tif = tmp_path / "out.tif"
    tifffile.imwrite(tif, np.zeros((2, 4, 4), np.uint8))
    before = tif.read_bytes()
    asked = []
    widget.confirm_replace = lambda q: asked.append(q) or False
    widget.save_result(tif)
    assert not widget.running and asked == [f"{tif} already exists. Replace it with "
                                            "'em repaired'?"]
    assert widget.status == f"Not saved: {tif} already exists and was kept."
    assert tif.read_bytes() == before
    widget.confirm_replace = lambda q: True
    widget.save_result(tif)
    _wait(qtbot, widget)
    np.testing.assert_array_equal(tifffile.imread(tif), expected)

    # the path comes from the file dialog when none is given; closing it saves nothing
    widget.choose_output = lambda suggested: None
    widget["save_button"].native.click()
    assert widget.status == "Save cancelled." and not widget.running
    suggested = []
    widget.choose_output = lambda s: suggested.append(s) or str(tmp_path / "picked.zarr")
    widget["save_button"].native.click()
    _wait(qtbot, widget)
    assert suggested[0].name == "em-repaired.ome.zarr"
    np.testing.assert_array_equal(np.asarray(read_stack(tmp_path / "picked.zarr")), expected)

    # the result layer cannot be picked as the image (it is no input)
    with pytest.raises(ValueError, match="not a valid choice"):
        widget.image_layer = viewer.layers["em repaired"]


def test_save_never_writes_onto_the_image_file(make_napari_viewer, tmp_path, qtbot):
    from napari.layers._source import layer_source

    stack = moving_stack(5, (64, 64))
    src = tmp_path / "em.tif"
    tifffile.imwrite(src, stack)
    before = src.read_bytes()
    viewer = make_napari_viewer()
    with layer_source(path=str(src)):
        image = viewer.add_image(stack.copy(), name="em")
    widget = RepairWidget(viewer, inpainter=FlowInpainter(stages="initial_reference"))
    viewer.window.add_dock_widget(widget)
    mask = widget.new_mask()
    mask.data[2][20:40, 20:40] = 1
    widget.z = 2
    widget.repair_current_slice()
    _wait(qtbot, widget)
    widget.confirm_replace = lambda q: pytest.fail("must not even ask")
    widget.save_result(src)
    assert widget.status.startswith(f"Cannot save to {src}: ")
    assert not widget.running and src.read_bytes() == before
    # a numpy image: the view's default output is a TIFF next to its file
    assert widget._default_output(image) == tmp_path / "em-repaired.tif"


@pytest.mark.parametrize("how", ["cancel", "close"])
def test_stopping_a_save_writes_nothing(lazy, qtbot, tmp_path, monkeypatch, how):
    viewer, widget, image, store, damaged, truth = lazy
    _paint(widget, [10])
    widget.repair_current_slice()
    _wait(qtbot, widget)
    real = save_module.write_stack

    class Slow:  # reads one section every 0.1 s
        def __init__(self, array):
            self.array, self.shape, self.dtype = array, array.shape, array.dtype

        def __getitem__(self, key):
            time.sleep(0.1)
            return self.array[key]

    monkeypatch.setattr(save_module, "write_stack",
                        lambda path, array, **kw: real(path, Slow(array), **kw))
    out = tmp_path / "out.ome.zarr"
    widget.save_result(out)
    qtbot.waitUntil(lambda: "2 of 20 slices written" in widget.status, timeout=10000)
    if how == "cancel":
        widget["cancel_button"].native.click()
    else:
        widget.close()
    _wait(qtbot, widget)
    assert widget.status == ("Save cancelled; nothing was written." if how == "cancel" else
                             "Save stopped: the Repair section widget was closed; nothing was "
                             "written.")
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "em.zarr"]


# ------------------------------------------------------------------------- the view itself
def test_repaired_view_indexes_like_the_array_it_stands_for(make_napari_viewer):
    source = np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4)
    view = RepairedView(da.from_array(source, chunks=(1, 5, 4)))
    expected = source.copy()
    for z in (1, 2, 4):
        view[z] = -source[z]
        expected[z] = -source[z]
    keys = [3, -2, np.int64(1), slice(None), slice(1, 5), slice(None, None, -1),
            slice(5, 0, -2), (slice(0, 6, 2), 1), (slice(None), slice(1, 3), 2),
            (Ellipsis, 0), (4, Ellipsis), [4, 1, 3], (2, slice(1, 4), slice(None)),
            (slice(3, 3),)]
    for key in keys:
        got = view[key]
        assert isinstance(got, np.ndarray), key
        np.testing.assert_array_equal(got, expected[key], err_msg=str(key))
    np.testing.assert_array_equal(np.asarray(view), expected)
    assert view.shape == (6, 5, 4) and view.ndim == 3 and view.dtype == np.float32
    assert view.held_bytes == 3 * 5 * 4 * 4 and view.repaired == [1, 2, 4]
    np.testing.assert_array_equal(source[1], np.arange(20, 40).reshape(5, 4))  # untouched
    with pytest.raises(ValueError, match="expected"):
        view[0] = np.zeros((3, 3))
    with pytest.raises(IndexError):
        view[6]
    # more than spill_bytes of repaired data moves to a temporary zarr store
    small = RepairedView(source, spill_bytes=100)
    small[0] = source[0] + 1
    assert small.store is None and small.held_bytes == 80
    small[3] = source[3] + 1
    assert small.store is not None and small.held_bytes == 0 and small.repaired == [0, 3]
    np.testing.assert_array_equal(small[0:4], np.concatenate([source[0:1] + 1, source[1:3],
                                                              source[3:4] + 1]))
    # napari shows it like any array
    viewer = make_napari_viewer()
    layer = viewer.add_image(view, name="view")
    viewer.dims.set_point(0, 2)
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), expected[2])


def _skip_learning(monkeypatch):
    """With a stand-in detector, what is normal for the stack is not learned (it would run
    the real detector): taken as known, 0."""
    monkeypatch.setattr(detect_module, "stack_reference", lambda stack, weights: ((0, 1), (0, 1)))
    monkeypatch.setattr(detect_module, "known_normal_area", lambda stack, **options: 0)
