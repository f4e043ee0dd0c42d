import subprocess
import sys

import numpy as np
import pytest
import torch
from _synth import moving_stack, shifted, texture

from napari_flowinpaint import FlowInpainter, initial_reference
from napari_flowinpaint.engine import (
    IntensityScale,
    as_mask,
    damage_box,
    damage_boxes,
    intermediate_flows,
    optical_flow,
    resolve_device,
    warp,
    warp_numpy,
)

INNER = (slice(12, -12), slice(12, -12))

#: the optical-flow stage alone (section 3.1), whatever weights are bundled
INITIAL = FlowInpainter(stages="initial_reference")


def mae(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))[INNER].mean())


@pytest.fixture(scope="module")
def base():
    return texture((128, 128), seed=1)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_initial_reference_recovers_midway_shift(base, method):
    d = 3.0
    prev, nxt, truth = base, shifted(base, 2 * d), shifted(base, d)
    ref = initial_reference(prev, nxt, method=method)
    avg = (prev + nxt) / 2
    assert mae(ref, truth) < 0.01
    assert mae(ref, truth) < 0.15 * mae(avg, truth)


def test_alpha_is_honoured_in_warps_and_blend(base):
    d = 4.0
    prev, nxt = base, shifted(base, 2 * d)
    ref = initial_reference(prev, nxt, alpha=0.25)
    assert mae(ref, shifted(base, 0.5 * d)) < 0.012
    assert mae(ref, shifted(base, 0.5 * d)) < 0.3 * mae(ref, shifted(base, d))
    assert mae(initial_reference(prev, nxt, alpha=0.0), prev) < 0.005
    assert mae(initial_reference(prev, nxt, alpha=1.0), nxt) < 0.005


def test_intermediate_flows_of_uniform_motion():
    f = np.zeros((4, 4, 2), np.float32)
    f[..., 0] = 6.0
    to_prev, to_next = intermediate_flows(f, -f, 1 / 3)
    np.testing.assert_allclose(to_prev[..., 0], -2.0, atol=1e-5)
    np.testing.assert_allclose(to_next[..., 0], 4.0, atol=1e-5)


@pytest.mark.parametrize("shape", [(5, 7), (300, 513)])
def test_warp_numpy_in_bands_of_rows_equals_warp_to_the_bit(shape):
    rng = np.random.default_rng(0)
    image = rng.random(shape, dtype=np.float32)
    flow = rng.normal(0, 3, (*shape, 2)).astype(np.float32)
    kept = image.copy()
    with torch.no_grad():
        whole = warp(torch.from_numpy(image)[None, None],
                     torch.from_numpy(flow.transpose(2, 0, 1).copy())[None])[0, 0].numpy()
    np.testing.assert_array_equal(warp_numpy(image, flow, rows=64), whole)
    np.testing.assert_array_equal(image, kept)  # the input is not touched


def test_intermediate_flows_are_the_formula_to_the_bit():
    rng = np.random.default_rng(1)
    pn, np_ = (rng.normal(0, 4, (33, 17, 2)).astype(np.float32) for _ in range(2))
    t = 0.3
    to_prev, to_next = intermediate_flows(pn, np_, t)
    np.testing.assert_array_equal(to_prev, (-(1 - t) * t * pn + t * t * np_))
    np.testing.assert_array_equal(to_next, ((1 - t) * (1 - t) * pn - t * (1 - t) * np_))
    assert to_prev.dtype == to_next.dtype == np.float32


def test_optical_flow_sign_convention(base):
    nxt = shifted(base, 2.0)  # nxt(x) = base(x - 2): base(x) = nxt(x + 2)
    flow = optical_flow(base, nxt)
    assert abs(float(np.median(flow[..., 0])) - 2.0) < 0.1
    assert abs(float(np.median(flow[..., 1]))) < 0.1


def test_warp_by_known_flow():
    img = torch.from_numpy(texture((32, 40), seed=3))[None, None]
    flow = torch.zeros(1, 2, 32, 40)
    flow[:, 0] = 2.0  # out(x) = img(x + 2)
    out = warp(img, flow)
    torch.testing.assert_close(out[..., :, :-2], img[..., :, 2:])
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        warp(img, flow[:, :1])


def _case(dtype, seed=2):
    t = texture((96, 96), seed=seed)
    if dtype == np.uint8:
        conv = lambda a: np.round(a * 200 + 20).astype(np.uint8)  # noqa: E731
    elif dtype == np.uint16:
        conv = lambda a: np.round(a * 40000 + 1000).astype(np.uint16)  # noqa: E731
    else:
        conv = lambda a: (a * 2.0 - 0.5).astype(dtype)  # noqa: E731
    prev, truth, nxt = conv(t), conv(shifted(t, 2)), conv(shifted(t, 4))
    mask = np.zeros(t.shape, bool)
    mask[30:60, 25:70] = True
    damaged = truth.copy()
    damaged[mask] = np.iinfo(dtype).max if dtype in (np.uint8, np.uint16) else 10.0
    return prev, truth, nxt, damaged, mask


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_inpaint_keeps_dtype_range_and_known_pixels(dtype):
    prev, truth, nxt, damaged, mask = _case(dtype)
    before = damaged.copy()
    out, report = INITIAL.inpaint(prev, damaged, nxt, mask, return_report=True)
    assert out.dtype == damaged.dtype and out.shape == damaged.shape
    np.testing.assert_array_equal(out[~mask], damaged[~mask])  # bit-identical (Eq. 12)
    np.testing.assert_array_equal(damaged, before)  # input untouched
    span = float(truth.max()) - float(truth.min())
    err_rep = np.abs(out[mask].astype(float) - truth[mask]).mean() / span
    err_dmg = np.abs(damaged[mask].astype(float) - truth[mask]).mean() / span
    assert err_rep < 0.01 * err_dmg  # restored error under 1 % of the damaged one
    assert out.min() >= min(prev.min(), nxt.min(), truth.min())
    assert out.max() <= max(prev.max(), nxt.max(), damaged[~mask].max())
    assert report.method == "initial_reference" and report.stages == ("initial_reference",)


def test_darker_section_is_repaired_at_its_own_level():
    prev, truth, nxt, damaged, mask = _case(np.float32)
    dark_truth = truth * 0.6 + 0.1
    dark = dark_truth.copy()
    dark[mask] = 1.0
    out = INITIAL.inpaint(prev, dark, nxt, mask)
    assert abs(float(out[mask].mean() - dark_truth[mask].mean())) < 0.01
    assert float(np.abs(out[mask] - dark_truth[mask]).mean()) < 0.02


def test_work_follows_the_damage_not_the_slice():
    big = np.zeros((2048, 2048), np.uint8)
    small = (texture((256, 256), seed=4) * 200).astype(np.uint8)
    big[:256, :256] = small
    mask = np.zeros(big.shape, bool)
    mask[100:120, 100:130] = True
    engine = FlowInpainter(stages="initial_reference", margin=48)
    _, report = engine.inpaint(big, big, big, mask, return_report=True)
    y0, y1, x0, x1 = report.box
    assert (y1 - y0) * (x1 - x0) < 150 * 150
    assert damage_box(mask, 0, min_size=1) == (100, 120, 100, 130)


def test_scattered_damage_is_repaired_cluster_by_cluster():
    stack = moving_stack(3, (600, 600), step=1.0)
    mask = np.zeros((600, 600), bool)
    mask[40:60, 50:80] = True          # cluster 1
    mask[62:66, 50:60] = True          # close to it: same cluster
    mask[500:530, 520:540] = True      # far away: cluster 2
    boxes = damage_boxes(mask, 48)
    assert len(boxes) == 2
    covered = np.zeros_like(mask)
    for (y0, y1, x0, x1), own in boxes:
        assert own.shape == (y1 - y0, x1 - x0)
        assert not covered[y0:y1, x0:x1][own].any()  # each damaged pixel repaired once
        covered[y0:y1, x0:x1] |= own
        assert (y1 - y0) * (x1 - x0) < 160 * 160
    np.testing.assert_array_equal(covered, mask)
    # the repair equals the one-box repair in quality, and keeps the known pixels
    damaged = np.where(mask, 255, stack[1]).astype(np.uint8)
    out, report = INITIAL.inpaint(stack[0], damaged, stack[2], mask, return_report=True)
    assert any("2 separate damaged areas" in n for n in report.notes)
    np.testing.assert_array_equal(out[~mask], damaged[~mask])
    err = np.abs(out[mask].astype(float) - stack[1][mask]).mean()
    assert err < 3.0, err
    # a dense or single region stays one box
    assert len(damage_boxes(mask[:100, :100], 48)) == 1
    assert len(damage_boxes(mask, 0)) == 1


def test_one_neighbour_is_used_as_reference():
    prev, truth, nxt, damaged, mask = _case(np.float32)
    out, report = INITIAL.inpaint(None, damaged, nxt, mask, return_report=True)
    assert report.neighbours == "next only"
    np.testing.assert_array_equal(out[~mask], damaged[~mask])
    assert float(np.abs(out[mask] - truth[mask]).mean()) < float(
        np.abs(damaged[mask] - truth[mask]).mean()
    )


def test_all_true_mask_returns_the_reference():
    prev, truth, nxt, damaged, _ = _case(np.float32)
    mask = np.ones(truth.shape, bool)
    out, report = INITIAL.inpaint(prev, damaged, nxt, mask, return_report=True)
    ref = initial_reference(prev, nxt)
    assert float(np.abs(out - ref).max()) < 1e-4
    assert any("whole section" in n for n in report.notes)


def test_all_false_mask_warns_and_copies():
    prev, truth, nxt, damaged, _ = _case(np.uint8)
    with pytest.warns(UserWarning, match="no damaged pixel"):
        out = INITIAL.inpaint(prev, damaged, nxt, np.zeros(truth.shape, bool))
    np.testing.assert_array_equal(out, damaged)
    assert out is not damaged


def test_label_masks_are_accepted():
    m = np.array([[0, 2], [5, 0]], np.uint16)
    np.testing.assert_array_equal(as_mask(m), [[False, True], [True, False]])
    np.testing.assert_array_equal(as_mask(m.astype(np.float32).clip(0, 1)), as_mask(m))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(damaged=np.zeros((4, 8, 8), np.uint8)), ValueError, "2-D section"),
        (dict(damaged=np.zeros((8, 8, 3), np.uint8)), ValueError, "RGB"),
        (dict(prev=np.zeros((9, 8), np.uint8)), ValueError, "same shape"),
        (dict(damaged=np.full((8, 8), np.nan, np.float32)), ValueError, "NaN"),
        (dict(damaged=np.zeros((8, 8), bool)), TypeError, "expected uint8"),
        (dict(damaged=np.zeros((8, 8), np.int32)), TypeError, "dtype int32"),
        (dict(mask=np.full((8, 8), 0.5)), ValueError, "values other than 0 and 1"),
        (dict(mask=-np.ones((8, 8), np.int8)), ValueError, "negative"),
        (dict(mask=np.ones((7, 8), bool)), ValueError, "shape"),
        (dict(prev=None, next=None), ValueError, "at least one neighbouring"),
        (dict(prev=np.zeros((8, 8), np.float32)), TypeError, "share one dtype"),
        (dict(alpha=1.5), ValueError, "alpha must lie"),
    ],
)
def test_bad_input_gives_clear_errors(kwargs, exc, match):
    args = dict(prev=np.zeros((8, 8), np.uint8), damaged=np.zeros((8, 8), np.uint8),
                next=np.zeros((8, 8), np.uint8), mask=np.ones((8, 8), bool), alpha=0.5)
    args.update(kwargs)
    alpha = args.pop("alpha")
    with pytest.raises(exc, match=match):
        INITIAL.inpaint(args["prev"], args["damaged"], args["next"], args["mask"],
                                alpha=alpha)


def test_engine_options_are_checked():
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        FlowInpainter(weights="model.safetensors")
    with pytest.raises(ValueError, match="deepest stage"):
        FlowInpainter(stages="gan")
    with pytest.raises(ValueError, match="flow_method"):
        FlowInpainter(flow_method="raft")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert FlowInpainter(device="cpu", stages="initial_reference").device.type == "cpu"


def test_intensity_scale_round_trip_uint16():
    img = (np.arange(64 * 64).reshape(64, 64) % 4000 + 100).astype(np.uint16)
    scale = IntensityScale.fit(img)
    np.testing.assert_array_equal(scale.from_unit(scale.to_unit(img)), img)


def test_import_does_not_pull_napari_or_qt():
    code = ("import sys, napari_flowinpaint, napari_flowinpaint.tasks.cli; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(("preset", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_wait_passively_unless_the_user_says_otherwise(preset, expected):
    """Spinning OpenMP waits made a repair 2-3x slower beside two busy processes; the policy
    must be in the environment before torch loads, and a user's own choice wins."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset is not None:
        env["OMP_WAIT_POLICY"] = preset
    code = ("import os, sys, napari_flowinpaint; assert 'torch' not in sys.modules; "
            "print(os.environ['OMP_WAIT_POLICY'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == expected


def test_report_times_each_part_of_the_repair():
    stack = moving_stack(3, (64, 64), seed=5)
    m = np.zeros((64, 64), bool)
    m[16:48, 20:44] = True
    _, _, report = FlowInpainter().inpaint(stack[0], stack[1], stack[2], m,
                                           return_confidence=True, return_report=True)
    parts = report.timings
    assert set(parts) == {"initial_reference", "refined_reference", "guided_inpainting",
                          "texture", "confidence"}
    assert all(v > 0 for v in parts.values())
    assert sum(parts.values()) <= report.seconds
    _, report = FlowInpainter(stages="initial_reference", mode="faithful").inpaint(
        stack[0], stack[1], stack[2], m, return_report=True)
    assert set(report.timings) == {"initial_reference"}
