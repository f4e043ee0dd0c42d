"""The textured and faithful repairs, the texture measures and the downstream membrane check."""

import numpy as np
import pytest
from _synth import moving_stack, shifted
from scipy import ndimage as ndi

from napari_flowinpaint.engine import (
    FlowInpainter,
    carry_grain,
    detail_correlation,
    grain_std,
    grain_strength,
)
from napari_flowinpaint.engine.texture import LEAST_STRENGTH
from napari_flowinpaint.tasks import cli
from napari_flowinpaint.tasks.evaluation import (
    MembraneClassifier,
    evaluate,
    grain_ratio,
    membrane_f1,
    sharpness_ratio,
)
from napari_flowinpaint.tasks.io import read_stack, write_stack


def _grainy(shape=(128, 128), seed=0):
    """Texture with fine grain (sigma 0.7) over coarse structure (sigma 4)."""
    rng = np.random.default_rng(seed)
    coarse = ndi.gaussian_filter(rng.standard_normal(shape), 4) * 6
    fine = ndi.gaussian_filter(rng.standard_normal(shape), 0.7)
    return (coarse + fine).astype(np.float32)


def _hole(shape=(128, 128)):
    m = np.zeros(shape, bool)
    m[32:96, 40:100] = True
    return m


# -- measures ---------------------------------------------------------------------------

def test_grain_ratio_is_one_for_the_truth_low_when_blurred_high_when_noisy():
    t, m = _grainy(), _hole()
    assert grain_ratio(t, t, m) == pytest.approx(1.0)
    blurred = ndi.gaussian_filter(t, 2)
    assert grain_ratio(t, blurred, m) < 0.3
    noisy = t + np.random.default_rng(1).normal(0, 1, t.shape).astype(np.float32)
    assert grain_ratio(t, noisy, m) > 1.5
    with pytest.raises(ValueError, match="no damaged pixel"):
        grain_ratio(t, t, np.zeros_like(m))
    assert np.isnan(grain_ratio(np.ones_like(t), t, m))


def test_membrane_f1_counts_within_the_tolerance_only():
    truth = np.zeros((64, 64), bool)
    truth[:, 30] = True  # one vertical membrane
    hole = np.zeros_like(truth)
    hole[16:48, 16:48] = True
    assert membrane_f1(truth, truth, hole)["f1"] == 1.0
    near = np.roll(truth, 2, axis=1)  # 2 px off: still right with the default tolerance
    assert membrane_f1(near, truth, hole)["f1"] == 1.0
    far = np.roll(truth, 5, axis=1)  # 5 px off: wrong
    r = membrane_f1(far, truth, hole)
    assert r["f1"] == 0.0 and r["precision"] == 0.0 and r["recall"] == 0.0
    half = truth.copy()
    half[:32] = False  # rows 32-63: finds rows 30-47 of the hole's 16-47 (2 px tolerance)
    r = membrane_f1(half, truth, hole)
    assert r["precision"] == 1.0 and r["recall"] == pytest.approx(18 / 32)
    assert r["f1"] == pytest.approx(2 * (18 / 32) / (1 + 18 / 32))
    assert np.isnan(membrane_f1(truth, np.zeros_like(truth), hole)["f1"])  # nothing to find
    assert membrane_f1(np.zeros_like(truth), truth, hole)["f1"] == 0.0


def _cells(shape=(96, 96), seed=0):
    """Voronoi cells with dark 2-px boundaries; returns (image uint8, membrane labels)."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, shape[0], (30, 2))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = ((yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2)
    lab = np.argmin(d, axis=-1)
    edge = (ndi.grey_dilation(lab, size=3) != ndi.grey_erosion(lab, size=3))
    img = np.where(edge, 60.0, 180.0) + rng.normal(0, 8, shape)
    return np.clip(img, 0, 255).astype(np.uint8), edge


def test_membrane_classifier_finds_membranes_and_loses_them_in_a_blur():
    imgs, labs = zip(*(_cells(seed=s) for s in range(4)), strict=True)
    clf = MembraneClassifier(trees=10, depth=8).fit(np.stack(imgs), np.stack(labs),
                                                     sections=range(3), pixels=2000)
    test_img, test_lab = imgs[3], labs[3]
    hole = np.zeros(test_img.shape, bool)
    hole[20:76, 20:76] = True
    sharp = membrane_f1(clf.predict(test_img), test_lab, hole)["f1"]
    smudged = test_img.copy()
    smudged[hole] = ndi.gaussian_filter(test_img.astype(float), 6)[hole].astype(np.uint8)
    blurred = membrane_f1(clf.predict(smudged), test_lab, hole)["f1"]
    assert sharp > 0.9 and blurred < sharp - 0.3, (sharp, blurred)
    with pytest.raises(RuntimeError, match="fit"):
        MembraneClassifier().predict(test_img)
    with pytest.raises(ValueError, match="shape"):
        MembraneClassifier().fit(np.stack(imgs), np.stack(labs)[:, :10], sections=[0])


def test_evaluate_reports_the_downstream_check_with_labels():
    imgs, labs = zip(*(_cells(seed=s) for s in range(5)), strict=True)
    stack, labels = np.stack(imgs), np.stack(labs)
    clf = MembraneClassifier(trees=10, depth=8).fit(stack, labels, sections=[0], pixels=2000)
    rep = evaluate(stack, spacing=1, crop=64, samples=2, ratios=[0.3], methods=["telea"],
                   membranes=labels, membrane_classifier=clf)
    row = rep["results"]["telea"]["0.3"]
    assert rep["config"]["downstream"] is True
    assert 0 <= row["membrane_f1"] < row["membrane_f1_undamaged"] <= 1
    with pytest.raises(ValueError, match="both"):
        evaluate(stack, spacing=1, crop=64, samples=1, membranes=labels)
    with pytest.raises(ValueError, match="shape"):
        evaluate(stack, spacing=1, crop=64, samples=1, membranes=labels[:, :10],
                 membrane_classifier=clf)


# -- the textured repair ------------------------------------------------------------------

def test_carry_grain_matches_the_grain_of_the_known_pixels():
    truth, m = _grainy(), _hole()
    smooth = ndi.gaussian_filter(truth, 2)  # what a least-error generator gives
    # the section's own grain, half as strong, with a little of another tissue's
    reference = smooth + 0.5 * (truth - smooth) + 0.1 * shifted(_grainy(seed=3), 0)
    damaged = np.where(m, 1.0, truth).astype(np.float32)
    out = carry_grain(smooth, reference, damaged, m)
    assert grain_ratio(truth, np.where(m, out, truth), m) == pytest.approx(1.0, abs=0.1)
    assert grain_ratio(truth, np.where(m, smooth, truth), m) < 0.3
    # the structure is the fill's: the low-pass of the result is the fill's low-pass
    low = ndi.gaussian_filter(out - smooth, 4)[m]
    assert np.abs(low).mean() < 0.1 * np.abs(truth - truth.mean()).mean()
    # a whole section missing: the neighbours' grain is the target
    everything = np.ones_like(m)
    out = carry_grain(smooth, reference, np.ones_like(truth), everything, neighbours=(truth,))
    assert np.std(out - ndi.gaussian_filter(out, 2)) == pytest.approx(grain_std(truth), rel=0.15)
    with pytest.raises(ValueError, match="one shape"):
        carry_grain(smooth, reference[:10], damaged, m)


def test_grain_is_carried_in_full_only_where_the_section_confirms_it():
    truth, m = _grainy(), _hole()
    damaged = np.where(m, 1.0, truth).astype(np.float32)
    own = detail_correlation(truth, damaged, m)  # the reference's detail is the section's
    other = detail_correlation(_grainy(seed=9), damaged, m)  # unrelated tissue
    assert own > 0.95 and abs(other) < 0.1
    assert grain_strength(own) == 1.0 and grain_strength(other) == LEAST_STRENGTH
    assert grain_strength(None) == 1.0  # a whole section missing: nothing to judge by
    smooth = ndi.gaussian_filter(truth, 2)
    full = carry_grain(smooth, truth, damaged, m)
    half = carry_grain(smooth, _grainy(seed=9) + smooth, damaged, m)
    g_full, g_half = (grain_ratio(truth, np.where(m, o, truth), m) for o in (full, half))
    assert g_full == pytest.approx(1.0, abs=0.1)
    # half the grain carried (plus what the smooth fill keeps of its own): 0.65 measured
    assert LEAST_STRENGTH < g_half < 0.75
    # where the detail is the section's own, carrying it is also the more faithful repair
    assert np.mean((full - truth)[m] ** 2) < np.mean((smooth - truth)[m] ** 2)


def test_textured_repair_has_the_grain_the_faithful_one_lacks():
    stack = moving_stack(3, (96, 96), step=1.0, seed=4).astype(np.float32)
    rng = np.random.default_rng(0)
    stack = np.clip(stack + rng.normal(0, 12, stack.shape), 0, 255).astype(np.uint8)
    m = np.zeros((96, 96), bool)
    m[24:72, 20:76] = True
    damaged = stack[1].copy()
    damaged[m] = 255
    outs = {mode: FlowInpainter(mode=mode).inpaint(stack[0], damaged, stack[2], m,
                                                   return_report=True)
            for mode in ("textured", "faithful")}
    for mode, (out, report) in outs.items():
        np.testing.assert_array_equal(out[~m], damaged[~m])
        assert report.mode == mode
    tex, fai = outs["textured"][0], outs["faithful"][0]
    g_tex, g_fai = grain_ratio(stack[1], tex, m), grain_ratio(stack[1], fai, m)
    assert g_fai < 0.6 and 0.7 < g_tex < 1.4, (g_fai, g_tex)
    assert sharpness_ratio(stack[1], tex, m) > sharpness_ratio(stack[1], fai, m)
    # here the neighbours are the section moved (their grain is its grain), so the grain
    # carried over is right and the textured repair is also the closer one
    err = {k: float(np.mean((o.astype(float) - stack[1])[m] ** 2)) for k, (o, _) in outs.items()}
    assert err["textured"] < err["faithful"]
    assert FlowInpainter(stages="initial_reference").inpaint(
        stack[0], damaged, stack[2], m, return_report=True)[1].mode == ""
    with pytest.raises(ValueError, match="textured"):
        FlowInpainter(mode="sharp")


def test_cli_mode_flag(tmp_path, capsys):
    stack = moving_stack(3, (64, 64), seed=2)
    masks = np.zeros(stack.shape, np.uint8)
    masks[1, 16:48, 16:48] = 1
    damaged = stack.copy()
    damaged[masks > 0] = 255
    inp = write_stack(tmp_path / "in.tif", damaged)
    mask = write_stack(tmp_path / "m.tif", masks)
    results = {}
    for mode in ("textured", "faithful"):
        out = tmp_path / f"{mode}.tif"
        assert cli.main(["repair", str(inp), "--mask", str(mask), "-o", str(out),
                         "--mode", mode, "--no-progress"]) == 0
        results[mode] = np.asarray(read_stack(out))
        engine = FlowInpainter(mode=mode)
        np.testing.assert_array_equal(results[mode][1], engine.inpaint(
            damaged[0], damaged[1], damaged[2], masks[1]))
    assert not np.array_equal(results["textured"], results["faithful"])
    with pytest.raises(SystemExit):
        cli.main(["repair", str(inp), "--mask", str(mask), "-o", str(tmp_path / "x.tif"),
                  "--mode", "sharp"])
    assert "invalid choice" in capsys.readouterr().err
