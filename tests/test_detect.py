"""Damage simulation and detection: realism of the simulated kinds, detector quality on real
crops, the mask options, the command line and bad input."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from napari_flowinpaint.engine.weights import (
    bundled_detector_path,
    bundled_weights_path,
    load_detector,
    load_weights,
)
from napari_flowinpaint.tasks.cli import main
from napari_flowinpaint.tasks.detection import (
    bright_blank,
    damage_scores,
    damaged_slices,
    decide_mask,
    detect_damage,
    refine_mask,
    stack_scale,
    without_holes,
)
from napari_flowinpaint.tasks.simulation import (
    DAMAGE_KINDS,
    continuing_structure,
    noise_level,
    simulate_damage,
)

SAMPLE = Path(__file__).parents[1] / "src" / "napari_flowinpaint" / "data" / \
    "fibsem_medulla_sample.tif"
needs_detector = pytest.mark.skipif(bundled_detector_path() is None,
                                    reason="no bundled detector weights in weights/")


@pytest.fixture(scope="module")
def sample():
    """Real FIB-SEM sections (16 x 192 x 192, 40 nm apart), shipped with the package."""
    return tifffile.imread(SAMPLE)


def _f1(found, truth):
    tp = np.count_nonzero(found & truth)
    p = tp / max(1, np.count_nonzero(found))
    r = tp / max(1, np.count_nonzero(truth))
    return 2 * p * r / (p + r) if p + r else 0.0


# ------------------------------------------------------------------------- simulation
@pytest.mark.parametrize("kind", DAMAGE_KINDS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_simulate_damage_changes_the_masked_pixels(sample, kind, dtype):
    img = sample[5].astype(dtype) * (257 if dtype == np.uint16 else 1)
    if dtype == np.float32:
        img = img / 255
    before = img.copy()
    damaged, mask = simulate_damage(img, kind, 3)
    np.testing.assert_array_equal(img, before)  # the input is not modified
    assert damaged.dtype == img.dtype and damaged.shape == img.shape
    assert mask.dtype == bool and 0.003 < mask.mean() <= 1.0
    diff = np.abs(damaged.astype(float) - img.astype(float)) / float(img.max())
    if kind == "defocus":  # the fine detail goes, the rest stays much as it was
        def detail(a):
            a = a.astype(np.float32)
            return float(np.std(a - cv2.GaussianBlur(a, (0, 0), 2.0)))

        assert detail(damaged) < 0.8 * detail(img) and mask.all()
    else:
        assert diff[mask].mean() > 0.04, kind  # the damage is visible ...
    if kind in ("hole", "stain", "sediment", "blur"):  # ... and stays where the mask says
        assert diff[~mask].mean() < 0.25 * diff[mask].mean(), kind
    again, mask2 = simulate_damage(img, kind, 3)  # seeded: the same damage
    np.testing.assert_array_equal(again, damaged)
    np.testing.assert_array_equal(mask2, mask)


def test_simulated_kinds_look_like_their_description(sample):
    img = sample[5]
    d, m = simulate_damage(img, "hole", 0)
    assert d[m].mean() > 235  # white film holes, holding only noise
    assert d[m].std() < 3 * noise_level(img) + 1
    d, m = simulate_damage(img, "fold", 0)
    assert d[m].mean() < 0.7 * img[m].mean()  # folds are dark
    d, m = simulate_damage(img, "stain", 0)
    assert d[m].mean() < 0.6 * img[m].mean()
    d, m = simulate_damage(img, "blur", 0)
    grad = np.abs(np.diff(d.astype(float), axis=1))[m[:, 1:]]
    grad0 = np.abs(np.diff(img.astype(float), axis=1))[m[:, 1:]]
    assert grad.mean() < 0.7 * grad0.mean()  # blurred: weaker edges
    d, m = simulate_damage(img, "missing", 0)
    assert m.all() and d.std() < 3 * noise_level(img) + 1


def test_simulate_damage_rejects_bad_input():
    img = np.zeros((64, 64), np.uint8)
    with pytest.raises(ValueError, match="unknown damage kind"):
        simulate_damage(img, "smudge", 0)
    with pytest.raises(ValueError, match="at least 32x32"):
        simulate_damage(np.zeros((16, 64), np.uint8), "hole", 0)
    with pytest.raises(ValueError, match="RGB"):
        simulate_damage(np.zeros((64, 64, 3), np.uint8), "hole", 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_continuing_structure_darkens_both_sections_at_nearly_the_same_place(sample, dtype):
    scale = 257 if dtype == np.uint16 else (1 / 255 if dtype == np.float32 else 1)
    a, b = ((sample[k].astype(np.float64) * scale).astype(dtype) for k in (5, 6))
    before = a.copy(), b.copy()
    a2, b2 = continuing_structure(a, b, 4)
    np.testing.assert_array_equal(a, before[0])  # the inputs are not modified
    np.testing.assert_array_equal(b, before[1])
    assert a2.dtype == dtype and b2.shape == b.shape
    da = a.astype(float) - a2.astype(float)  # how much darker each pixel became
    db = b.astype(float) - b2.astype(float)
    assert (da >= -1e-6).all() and (db >= -1e-6).all()  # only darker
    core_a = da > 0.5 * da.max()
    core_b = db > 0.5 * db.max()
    assert 0.002 < core_a.mean() < 0.3 and core_b.mean() > 0.5 * core_a.mean()
    # the neighbour's dark body lies within a few pixels of the section's
    near = cv2.dilate(core_a.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    assert (core_b & near).sum() > 0.8 * core_b.sum()
    np.testing.assert_array_equal(continuing_structure(a, b, 4)[0], a2)  # seeded
    with pytest.raises(ValueError, match="same shape"):
        continuing_structure(a, b[:50], 0)


# ------------------------------------------------------------------------- mask options
def test_refine_mask_options_do_what_they_say():
    mask = np.zeros((60, 60), bool)
    mask[10, 10] = True  # one pixel
    mask[30:40, 30:32] = True  # an L shape
    mask[38:40, 30:45] = True
    grown = refine_mask(mask, grow=3)
    assert grown[7:14, 10].all() and not grown[5, 10]  # a disk of radius 3
    assert grown.sum() > mask.sum()
    kept = refine_mask(mask, min_area=5)
    assert not kept[10, 10] and kept[30:40, 30:32].all()  # small region dropped
    rect = refine_mask(mask, rectangles=True, min_area=5)
    assert rect[30:40, 30:45].all() and rect.sum() == 10 * 15
    np.testing.assert_array_equal(refine_mask(mask), mask)
    with pytest.raises(ValueError, match="grow and min_area"):
        refine_mask(mask, grow=-1)
    with pytest.raises(ValueError, match="2-D"):
        refine_mask(mask[None])


def test_decide_mask_hysteresis_and_bright_snapping():
    p = np.zeros((80, 80), np.float32)
    bright = np.zeros((80, 80), bool)
    p[5:20, 5:20] = 0.97           # a sure region: kept
    p[40:55, 5:20] = 0.7           # a lukewarm region (false alarm on a real section)
    p[30:50, 42:58] = 0.99         # the network's wide blob over a thin bright crack
    bright[30:50, 48:53] = True
    bright[60:70, 60:62] = True    # a bright spot nowhere near a candidate
    m = decide_mask(p, bright, seed_threshold=0.9, snap_fraction=0.3)
    assert m[5:20, 5:20].all()
    assert not m[40:55, 5:20].any()                        # hysteresis drops it
    assert m[30:50, 47:54].all() and not m[30:50, 42:46].any()  # snapped to the crack, +1 px
    assert not m[60:70, 60:62].any()                       # not touching: ignored
    # alone (no neighbour), every bright region counts; seed 0 keeps lukewarm regions
    assert decide_mask(p, bright, alone=True)[60:70, 60:62].all()
    assert decide_mask(p, bright, seed_threshold=0.0)[40:55, 5:20].all()
    full = decide_mask(p, bright, snap_bright=False)
    assert full[30:50, 42:58].all()
    assert not decide_mask(np.zeros_like(p), np.zeros_like(bright)).any()


def test_decide_mask_snaps_a_crack_drawn_too_wide():
    p = np.zeros((80, 80), np.float32)
    bright = np.zeros((80, 80), bool)
    p[10:70, 30:46] = 0.99         # 16 px wide where the crack is 5 px: bright fraction 0.31
    bright[10:70, 35:40] = True
    snapped = decide_mask(p, bright)  # under snap_fraction 0.35: the 6 px margin decides
    assert snapped[10:70, 34:41].all() and not snapped[:, 30:33].any()
    assert not snapped[:, 42:46].any()
    assert decide_mask(p, bright, snap_margin=0)[10:70, 30:46].all()  # margin off: as drawn
    assert decide_mask(p, bright, snap_margin=3)[10:70, 30:46].all()  # rim wider than 3 px


def test_without_holes_fills_a_neighbours_hole_from_the_other_one(sample):
    scale = stack_scale(sample)
    holed, truth = simulate_damage(sample[7], "hole", 0)
    filled = without_holes(holed, sample[6], sample[8], scale)
    assert filled is not holed and filled.dtype == holed.dtype
    np.testing.assert_array_equal(filled[truth], sample[8][truth])  # the hole, from the other
    far = ~cv2.dilate(truth.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert np.mean(filled[far] != holed[far]) < 0.005               # the rest kept
    clean = without_holes(sample[7], sample[6], sample[8], scale)        # no hole: kept
    assert np.mean(clean != sample[7]) < 0.005
    alone = without_holes(holed, sample[6], None, scale)                # no other: section
    np.testing.assert_array_equal(alone[truth], sample[6][truth])
    assert without_holes(None, sample[6], sample[8], scale) is None


@pytest.mark.parametrize("seed,thin", [(2, True), (3, True), (6, False)])
def test_bright_blank_finds_thin_cracks(sample, seed, thin):
    """Cracks 5-7 px wide have no flat pixel (their edges are everywhere): they are found
    by lying far above the brightest tissue; the flatness rule alone finds wider ones."""
    neighbours, scale = (sample[5], sample[7]), stack_scale(sample)
    damaged, truth = simulate_damage(sample[6], "crack", seed)
    assert _f1(bright_blank(damaged, neighbours, scale), truth) >= 0.8
    flat_only = bright_blank(damaged, neighbours, scale, far=9.0)
    assert flat_only.any() != thin
    assert not bright_blank(sample[6], neighbours, scale).any()


def test_a_bright_speck_in_a_neighbour_does_not_hide_a_crack(sample):
    """The neighbours' brightest tissue is judged near each pixel: a small saturated speck
    in a neighbour (about 0.3 % of it) must not lift the level a crack elsewhere has to
    exceed (on isbi2012_test such specks hid cracks in the next section)."""
    scale = stack_scale(sample)
    damaged, truth = simulate_damage(sample[6], "crack", 6)
    yy, xx = np.mgrid[:sample.shape[1], :sample.shape[2]]
    speck = (yy - 40) ** 2 + (xx - 150) ** 2 <= 6 ** 2
    assert 0.002 < speck.mean() < 0.004 and not truth[speck].any()
    speckled = sample[7].copy()
    speckled[speck] = 255
    found = bright_blank(damaged, (sample[5], speckled), scale)
    assert _f1(found, truth) >= 0.8
    assert not bright_blank(sample[6], (sample[5], speckled), scale).any()


@pytest.mark.parametrize("kind,seed", [("hole", 0), ("crack", 2), ("crack", 6), ("stain", 1)])
def test_bright_tissue_judged_nearby_finds_all_the_whole_section_level_finds(sample, kind,
                                                                            seed):
    """Judged near each pixel, the neighbours' brightest tissue is never above their 99.9th
    percentile (``near=False``, what ``without_holes`` uses): here every pixel found with
    that level is found too, and a hole or crack whole."""
    scale = stack_scale(sample)
    damaged, truth = simulate_damage(sample[9], kind, seed)
    neighbours = (sample[8], sample[10])
    near = bright_blank(damaged, neighbours, scale)
    whole = bright_blank(damaged, neighbours, scale, near=False)
    assert not (whole & ~near).any()
    if kind in ("hole", "crack"):
        assert _f1(near, truth) >= 0.8
    else:  # a dark stain is no blank film either way
        assert not near.any()


# ------------------------------------------------------------------------- the detector
@needs_detector
# stains on these 192 px crops are small (radius 7-21 px) and folds narrow: the detector,
# tuned for fewer false alarms on real sections of every stack, finds about half of them
# here (F1 .70-.82 on the 250-512 px validation sections, benchmarks/eval_detection.py)
@pytest.mark.parametrize("kind,least", [("hole", 0.8), ("missing", 0.95), ("crack", 0.6),
                                        ("fold", 0.3), ("stain", 0.4), ("sediment", 0.6),
                                        ("blur", 0.6), ("defocus", 0.5)])
def test_detects_each_kind_on_a_real_crop(sample, kind, least):
    f1s = []
    for seed in range(4):
        stack = sample[4:9].copy()
        stack[2], truth = simulate_damage(sample[6], kind, seed)
        found = detect_damage(stack, 2)
        assert found.shape == truth.shape and found.dtype == bool
        f1s.append(_f1(found, truth))
    print(kind, np.round(f1s, 3))
    assert np.mean(f1s) >= least, (kind, f1s)


@needs_detector
def test_clean_real_slices_stay_clean(sample):
    scores = damage_scores(sample)
    assert scores.shape == (len(sample),)
    assert np.mean(scores > 0) <= 0.15, scores  # at most 2 of 16 flagged
    assert scores.max() < 0.02, scores


@needs_detector
def test_works_with_one_or_no_neighbour_any_dtype_and_size(sample):
    # alone (a 2-D section): a blank section is missing, a clean one stays nearly clean
    assert detect_damage(np.full((90, 70), 255, np.uint8)).all()
    assert detect_damage(sample[7]).mean() < 0.05
    # one neighbour
    f1s = []
    for seed in (0, 1):
        damaged, truth = simulate_damage(sample[7], "hole", seed)
        f1s.append(_f1(detect_damage(np.stack([sample[6], damaged]), 1), truth))
    assert np.mean(f1s) > 0.5, f1s
    # two neighbours, odd sizes, every dtype
    crop = (slice(0, 151), slice(0, 123))
    damaged, truth = simulate_damage(sample[7][crop], "hole", 0)
    stack = np.stack([sample[6][crop], damaged, sample[8][crop]])
    for scale, dtype in ((1, np.uint8), (257, np.uint16), (1 / 255, np.float32),
                         (1 / 255, np.float64)):
        found = detect_damage((stack.astype(np.float64) * scale).astype(dtype), 1)
        assert found.shape == (151, 123)
        assert _f1(found, truth) > 0.8, (dtype, _f1(found, truth))


@needs_detector
def test_section_evidence_is_what_detection_decides_from(sample):
    from napari_flowinpaint.tasks.detection import section_evidence, stack_reference

    stack = sample[4:9].copy()
    stack[2], truth = simulate_damage(sample[6], "crack", 3)
    scale, level = stack_reference(stack)
    p, bright, alone, blank = section_evidence(stack[1], stack[2], stack[3], scale=scale,
                                               level=level)
    assert p.shape == bright.shape == blank.shape == truth.shape and p.dtype == np.float32
    assert not alone
    assert blank[truth].mean() > 0.5 and blank[~truth].mean() < 0.3  # the crack: white
    assert p[truth].mean() > 0.7 and p[~truth].mean() < 0.1
    assert bright[truth].mean() > 0.5 and bright[~truth].mean() < 0.01
    # detection is exactly these, through decide_mask and refine_mask
    found = refine_mask(decide_mask(p, bright, blank=blank), min_area=100)
    np.testing.assert_array_equal(found, detect_damage(stack, 2, relative=False))
    # no neighbour: judged alone; the neighbours given are not modified
    before = stack.copy()
    assert section_evidence(None, stack[2], None, scale=scale, level=level)[2]
    np.testing.assert_array_equal(stack, before)


@needs_detector
def test_stack_detection_ranks_and_stops(sample):
    stack = sample[:8].copy()
    stack[5] = 255  # a missing section
    stack[2], truth = simulate_damage(sample[2], "hole", 0)
    before = stack.copy()
    order = damaged_slices(stack)
    assert order[:2] == [5, 2]
    np.testing.assert_array_equal(stack, before)  # user data untouched
    seen = []
    masks = detect_damage(stack, progress=lambda d, t: seen.append((d, t)),
                          should_stop=lambda: len(seen) >= 3)
    assert seen == [(1, 8), (2, 8), (3, 8)]
    assert masks[2].any() and not masks[3:].any()  # kept what it finished
    full = detect_damage(stack, grow=2, rectangles=True)
    assert full[5].all() and _f1(full[2], truth) > 0.5


@needs_detector
def test_detect_rejects_bad_input(sample):
    with pytest.raises(ValueError, match="one section .* or a stack"):
        detect_damage(np.zeros((2, 2, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="sensitivity"):
        detect_damage(sample, 1, sensitivity=2)
    with pytest.raises(IndexError, match="outside the stack"):
        detect_damage(sample, 40)
    with pytest.raises(ValueError, match="NaN"):
        bad = sample[:3].astype(np.float32)
        bad[1, 0, 0] = np.nan
        detect_damage(bad, 1)
    with pytest.raises(ValueError, match="grow and min_area"):
        detect_damage(sample, 1, grow=1.5)


@needs_detector
def test_detector_weights_are_checked(tmp_path):
    net = load_detector()
    assert net.meta["kind"] == "detector"
    with pytest.raises(ValueError, match="not inpainting weights"):
        load_weights(bundled_detector_path())
    if bundled_weights_path() is not None:
        with pytest.raises(ValueError, match="does not hold damage-detector"):
            load_detector(bundled_weights_path())
    bad = tmp_path / "d.safetensors"
    bad.write_bytes(b"\x80\x04junk")
    with pytest.raises(ValueError, match="pickle"):
        load_detector(bad)


# ------------------------------------------------------------------------- command line
@needs_detector
def test_detect_command_writes_mask_and_report(sample, tmp_path, capsys):
    stack = sample[:6].copy()
    stack[3], truth = simulate_damage(sample[3], "hole", 2)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, stack)
    out, report = tmp_path / "mask.tif", tmp_path / "report.csv"
    assert main(["detect", str(src), "-o", str(out), "--report", str(report), "--grow", "1",
                 "--no-progress"]) == 0
    mask = tifffile.imread(out)
    assert mask.shape == stack.shape and mask.dtype == np.uint8
    assert _f1(mask[3] > 0, truth) > 0.6
    rows = report.read_text().splitlines()
    assert rows[0] == "z,damaged_fraction,regions,flagged" and len(rows) == 7
    assert rows[4].startswith("3,") and rows[4].endswith(",1")
    assert "slice(s) show damage" in capsys.readouterr().out
    # the input is protected, and an existing output is not replaced without --overwrite
    assert main(["detect", str(src), "-o", str(src), "--no-progress"]) == 2
    assert main(["detect", str(src), "-o", str(out), "--no-progress"]) == 2
    assert main(["detect", str(src), "-o", str(out), "--sensitivity", "3", "--overwrite",
                 "--no-progress"]) == 2
    np.testing.assert_array_equal(tifffile.imread(src), stack)


@needs_detector
def test_evaluate_detection_command(sample, tmp_path, capsys):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, sample[:8])
    js = tmp_path / "r.json"
    assert main(["evaluate-detection", str(src), "--samples", "2", "--kinds", "hole", "missing",
                 "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "| hole |" in out and "| missing |" in out and "ms per slice" in out
    import json

    rep = json.loads(js.read_text())
    assert rep["kinds"]["missing"]["f1"] > 0.95 and rep["kinds"]["hole"]["f1"] > 0.7
    assert rep["clean"]["slices"] == 8


@needs_detector
def test_evaluate_detection_leaves_known_damaged_real_sections_out(sample):
    from napari_flowinpaint.tasks.evaluation import (
        evaluate_detection,
        format_detection_table,
    )

    stack = sample[:8].copy()
    stack[3] = simulate_damage(sample[3], "hole", 2)[0]  # a real defect of the stack
    opts = dict(samples=1, kinds=("missing",), continuing=False)
    plain = evaluate_detection(stack, **opts)
    known = evaluate_detection(stack, known_damaged=[3], **opts)
    assert plain["clean"]["slices"] == 8 and known["clean"]["slices"] == 7
    assert known["known_damaged"] == {3: True}  # judged, flagged, reported apart
    assert plain["clean"]["flagged"] == pytest.approx(1 / 8)
    assert known["clean"]["flagged"] == 0.0
    assert known["kinds"]["missing"]["f1"] == plain["kinds"]["missing"]["f1"] == 1.0
    table = format_detection_table(known)
    assert "known damaged left out, 7 slices" in table
    assert "| real section 3, known damaged | | | | | flagged |" in table
    with pytest.raises(ValueError, match="outside the range"):
        evaluate_detection(stack, known_damaged=[9], **opts)
    with pytest.raises(ValueError, match="every section"):
        evaluate_detection(stack, known_damaged=range(8), **opts)


@needs_detector
def test_evaluate_detection_draws_no_simulated_damage_on_known_damaged_sections(
        sample, monkeypatch):
    # a sample drawn on a really damaged section would score its real damage as false pixels
    import napari_flowinpaint.tasks.evaluation.detection as det

    stack = sample[:6].copy()
    drawn = []

    def spy(image, kind, rng=None):
        drawn.append(next(z for z in range(len(stack)) if np.array_equal(image, stack[z])))
        return simulate_damage(image, kind, rng)

    monkeypatch.setattr(det, "simulate_damage", spy)
    det.evaluate_detection(stack, samples=12, kinds=("missing",), continuing=False,
                           known_damaged=[1, 3, 4])
    assert len(drawn) == 12 and set(drawn) == {0, 2, 5}


@needs_detector
def test_evaluate_detection_reads_a_big_lazy_stack_a_few_sections_at_a_time(
        sample, monkeypatch):
    from _synth import CountingStack

    import napari_flowinpaint.tasks.io.stacks as stacks
    from napari_flowinpaint.tasks.evaluation import evaluate_detection

    stack = sample[:9]
    opts = dict(samples=2, kinds=("hole", "stain"), spacing=2)
    plain = evaluate_detection(stack, **opts)
    monkeypatch.setattr(stacks, "SMALL_BYTES", 1024)  # the sample is "big" here
    lazy = CountingStack(stack)
    assert evaluate_detection(lazy, **opts)["kinds"] == plain["kinds"]
    assert lazy.reads and max(lazy.reads) == 1  # section by section, never a range


def test_detector_training_lowers_the_loss_and_resumes(sample, tmp_path):
    from napari_flowinpaint.tasks.training import TrainSource, train_detector

    path = tmp_path / "tiny.tif"
    tifffile.imwrite(path, sample[:6, :96, :96])
    src = [TrainSource(str(path), (0, 6), (1,))]
    run = tmp_path / "run"
    losses = []
    w = train_detector(run, sources=src, iterations=40, batch=4, crop=48, width=4, lr=3e-3,
                       checkpoint_every=20, callback=lambda i: losses.append(i["loss"]))
    assert len(losses) == 40
    assert np.mean(losses[-10:]) < np.mean(losses[:10]), losses
    net = load_detector(w)
    assert net.meta["training"]["iterations"] == 40
    import torch

    assert net(torch.zeros(1, 8, 40, 30)).shape == (1, 1, 40, 30)
    # asking for more resumes from the checkpoint, with the step count kept
    more = []
    train_detector(run, sources=src, iterations=45, batch=4, crop=48, width=4, lr=3e-3,
                   callback=lambda i: more.append(i["step"]))
    assert more == [41, 42, 43, 44, 45]
    assert len((run / "losses.csv").read_text().splitlines()) == 1 + 45
    # fine-tuning starts from trained weights (their width), with chosen kinds and clean share
    tuned = train_detector(tmp_path / "tuned", sources=src, iterations=3, batch=2, crop=48,
                           width=9, init=w, p_clean=0.0, p_continuing=0.5,
                           kind_weights={k: 0 for k in DAMAGE_KINDS[1:]})
    net2 = load_detector(tuned)
    assert net2.width == 4 and net2.meta["training"]["init"] == str(w)
    assert net2.meta["training"]["kind_weights"]["missing"] == 0
    assert net2.meta["training"]["p_continuing"] == 0.5


def test_detector_sampler_draws_the_kinds_asked_for(sample):
    from napari_flowinpaint.tasks.training import DetectorSampler, TrainSource

    src = TrainSource("<sample>", (0, 16), (1,))
    only_missing = DetectorSampler([(sample, src)], crop=48, rng=0, p_clean=0.0,
                                   p_one_sided=0.0, p_alone=0.0,
                                   kind_weights={k: 0 for k in DAMAGE_KINDS if k != "missing"})
    for _ in range(4):
        _, t, _ = only_missing.sample()
        assert t.all()  # a missing section is damaged everywhere
    clean = DetectorSampler([(sample, src)], crop=48, rng=0, p_clean=1.0)
    assert not any(clean.sample()[1].any() for _ in range(4))
    # a damaged neighbour changes the input, never the target: on a stack of one section
    # repeated, only the damage makes a neighbour differ locally from the section
    same = np.repeat(sample[6:7], 16, axis=0)

    def count(samples, differ, rng, **p):
        """How many of ``samples`` draws of clean samples differ by ``differ(x)``; the
        targets must stay empty."""
        s = DetectorSampler([(same, src)], crop=96, rng=rng, p_clean=1.0, p_one_sided=0.0,
                            p_alone=0.0, **p)
        n = 0
        for _ in range(samples):
            x, t, _ = s.sample()
            assert not t.any()
            n += differ(x)
        return n

    def differing(p_damaged_neighbour):
        return count(8, lambda x: np.percentile(
            np.maximum(np.abs(x[0] - x[1]), np.abs(x[2] - x[1])), 99) > 0.25, 1,
            p_damaged_neighbour=p_damaged_neighbour)

    assert differing(0.0) == 0 and differing(1.0) >= 4
    # a dark body drawn in the section and a neighbour alike changes the input, not the
    # target: the two neighbours (the same section here) then differ where it lies
    def neighbours_differ(p_continuing):
        return count(4, lambda x: np.abs(x[0] - x[2]).max() > 0.05, 2,
                     p_continuing=p_continuing)

    assert neighbours_differ(0.0) == 0 and neighbours_differ(1.0) == 4
    with pytest.raises(ValueError, match="unknown damage kinds"):
        DetectorSampler([(sample, src)], kind_weights={"scratch": 1})
    with pytest.raises(ValueError, match="not all 0"):
        DetectorSampler([(sample, src)], kind_weights={k: 0 for k in DAMAGE_KINDS})


@needs_detector
def test_stack_pass_reuses_cues_and_matches_slice_by_slice(sample):
    from napari_flowinpaint.tasks.detection import detector_input, stack_scale

    stack = sample[:6].copy()
    stack[3], _ = simulate_damage(sample[3], "crack", 1)
    scale = stack_scale(stack)
    p, s, n = stack[1], stack[2], stack[3]
    cache = {}
    a = detector_input(p, s, n, scale, cache=cache)
    assert len(cache) == 3
    b = detector_input(s, n, stack[4], scale, cache=cache)  # s and n from the cache
    assert len(cache) == 4
    np.testing.assert_array_equal(a, detector_input(p, s, n, scale, cache=cache))
    np.testing.assert_array_equal(a, detector_input(p, s, n, scale))
    np.testing.assert_array_equal(b, detector_input(s, n, stack[4], scale))
    # another scale is not served from the cache
    c = detector_input(p, s, n, (scale[0], scale[1] * 2), cache=cache)
    assert not np.array_equal(a, c)
    whole = detect_damage(stack)
    for z in range(len(stack)):
        np.testing.assert_array_equal(whole[z], detect_damage(stack, z))
    assert whole[3].any()


def test_evaluate_detection_can_damage_the_neighbours(sample, monkeypatch):
    import napari_flowinpaint.tasks.evaluation.detection as ed

    seen = []

    def fake(part, i, **kw):  # records what the detector is shown
        seen.append((part.copy(), i))
        return np.zeros(part.shape[1:], bool)

    monkeypatch.setattr(ed, "detect_damage", fake)
    stack = sample[:6].copy()

    def changed(neighbour_damage):
        seen.clear()
        rep = ed.evaluate_detection(stack, samples=3, kinds=("hole",),
                                    neighbour_damage=neighbour_damage)
        centres = [part[i].copy() for part, i in seen]
        moved = [sum(not any(np.array_equal(row, real) for real in stack) for row in part)
                 for part, _ in seen]
        return rep, centres, moved

    rep0, centres0, moved0 = changed(0.0)
    rep1, centres1, moved1 = changed(1.0)
    # judged sections are the same (clean ones real, damaged ones identical), only the
    # neighbours differ: none damaged at 0, all of them at 1
    for a, b in zip(centres0, centres1, strict=True):
        np.testing.assert_array_equal(a, b)
    assert moved0 == [0] * 6 + [1] * 3 + [2] * 6  # the last 6: a continuing dark body
    assert moved1 == [len(part) - 1 for part, _ in seen[:6]] + \
        [len(part) for part, _ in seen[6:9]] + [len(part) for part, _ in seen[9:]]
    assert rep1["settings"]["neighbour_damage"] == 1.0
    assert "neighbours damaged at p = 1" in ed.format_detection_table(rep1)
    np.testing.assert_array_equal(stack, sample[:6])  # the stack itself is never touched
    with pytest.raises(ValueError, match="probability"):
        ed.evaluate_detection(stack, neighbour_damage=1.5)



def test_a_damaged_section_does_not_stretch_the_scale_of_the_others(sample):
    part = sample[4:9].copy()
    base = stack_scale(part)
    for value in (255, 0):  # a white film hole / a black blob in one section
        hurt = part.copy()
        hurt[1, 20:140, 30:150] = value
        assert stack_scale(hurt) == base
    blank = part.copy()  # a missing section: one grey level with noise
    blank[3] = np.clip(np.random.default_rng(0).normal(250, 2, blank[3].shape), 0, 255)
    assert stack_scale(blank) == base
    # sections that simply differ a little are all used (ISBI sections vary by ~15 %)
    varied = part.astype(np.float32)
    varied[0] = varied[0] * 1.1
    lo, hi = stack_scale(varied)
    assert hi > base[1] + 2


@needs_detector
def test_a_clean_section_beside_a_damaged_one_stays_clean(sample):
    rng = np.random.default_rng(3)
    part = sample[4:9].copy()
    assert not detect_damage(part, 2).any()
    # folds too (issue 26: a fold's evidence once landed on the healthy section beside it)
    for kind in ("hole", "missing", "crack", "fold", "fold", "fold", "stain"):
        hurt = part.copy()
        hurt[1] = simulate_damage(hurt[1], kind, rng)[0]
        assert not detect_damage(hurt, 2).any(), kind
    alternate = sample.copy()  # damage on every other section (6, 8, 10): 7 and 9 clean
    yy, xx = np.mgrid[: sample.shape[1], : sample.shape[2]]
    alternate[6][np.abs(yy + 0.4 * xx - 120) < 6] = 15  # a dark band (a fold)
    alternate[8][(yy - 90) ** 2 / 40 ** 2 + (xx - 100) ** 2 / 25 ** 2 < 1] = 255  # a hole
    alternate[10][(yy - 50) ** 2 + (xx - 140) ** 2 < 30 ** 2] = 250  # a bright smear
    found = detect_damage(alternate)
    assert [z for z in range(len(found)) if found[z].any()] == [6, 8, 10]
    for seed in range(3):  # a whole stack run, as `auto` does: only the folded section
        hurt = sample.copy()
        hurt[8], truth = simulate_damage(hurt[8], "fold", seed)
        found = detect_damage(hurt)
        assert found[[k for k in range(len(hurt)) if k != 8]].sum() == 0, seed
