"""Weights files, the learned stages in the engine, training, fine-tuning and packaging."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _synth import CountingStack, moving_stack

from napari_flowinpaint.engine import (
    FlowInpainter,
    bundled_weights_path,
    load_weights,
    prepare_inputs,
    save_weights,
)
from napari_flowinpaint.engine.nets import build_networks, get_config
from napari_flowinpaint.tasks.training import TrainSettings, TrainSource, TripletSampler, train

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BUNDLED = bundled_weights_path()
needs_bundled = pytest.mark.skipif(BUNDLED is None, reason="no bundled weights in weights/")


def _nets(seed=0):
    torch.manual_seed(seed)
    return build_networks("cpu")


# --------------------------------------------------------------------------- weights files
@pytest.mark.parametrize("half", [False, True])
def test_weights_round_trip(tmp_path, half):
    f, g, d = _nets()
    path = save_weights(tmp_path / "w", get_config("cpu"), f, g, d, meta={"note": "x"},
                        half=half)
    assert path.name == "w.safetensors" and path.with_suffix(".json").is_file()
    lw = load_weights(path)
    assert lw.meta["note"] == "x" and lw.config == get_config("cpu")
    for a, b in ((f, lw.flow_net), (g, lw.generator), (d, lw.discriminator)):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(),
                                      strict=True):
            assert ka == kb
            tol = 1e-3 * float(va.abs().max()) if half and va.is_floating_point() else 0
            assert float((va.float() - vb.float()).abs().max()) <= tol
    # a lone .safetensors (no side-car) still loads from its header
    path.with_suffix(".json").unlink()
    assert load_weights(path).config == get_config("cpu")


def test_pickle_corrupt_and_mismatched_files_are_refused(tmp_path):
    f, g, d = _nets()
    pkl = tmp_path / "model.safetensors"
    torch.save(g.state_dict(), pkl)
    with pytest.raises(ValueError, match=r"model\.safetensors.*pickle"):
        load_weights(pkl)
    good = save_weights(tmp_path / "good", get_config("cpu"), f, g)
    data = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.safetensors.*truncated or corrupt"):
        load_weights(cut)
    # tensors of the cpu configuration declared as the gpu one
    wrong = tmp_path / "wrong.safetensors"
    wrong.write_bytes(data)
    import json

    info = json.loads(good.with_suffix(".json").read_text())
    info["architecture"] = get_config("gpu").to_dict()
    wrong.with_suffix(".json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"wrong\.safetensors.*do not match"):
        load_weights(wrong)
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_weights(tmp_path / "nothere.safetensors")


# --------------------------------------------------------------------------- engine
def _triplet(dtype=np.uint8):
    stack = moving_stack(3, (96, 96), step=2.0, seed=3)
    prev, truth, nxt = (s.astype(dtype) for s in stack)
    mask = np.zeros(truth.shape, bool)
    mask[30:60, 20:70] = True
    damaged = truth.copy()
    damaged[mask] = np.iinfo(dtype).max if dtype == np.uint8 else 1
    return prev, truth, nxt, damaged, mask


def test_prepare_inputs_matches_the_damaged_section():
    prev, truth, nxt, damaged, mask = _triplet()
    u = prepare_inputs(prev, damaged * 0.5, nxt, mask)  # a darker damaged section
    known = ~mask
    for a in (u.prev, u.next, u.reference):
        assert abs(float(a[known].mean() - u.damaged[known].mean())) < 1e-3
    assert u.matched and (u.damaged[mask] == 1).all()
    one = prepare_inputs(None, damaged, nxt, mask)
    np.testing.assert_array_equal(one.prev, one.next)


@pytest.mark.parametrize("stages", ["refined_reference", "guided_inpainting"])
def test_engine_runs_the_learned_stages_with_a_weights_file(tmp_path, stages):
    f, g, d = _nets()
    path = save_weights(tmp_path / "w", get_config("cpu"), f, g)
    engine = FlowInpainter(weights=path, stages=stages, device="cpu")
    assert engine.stages[-1] == stages and engine.method == stages
    prev, truth, nxt, damaged, mask = _triplet()
    before = damaged.copy()
    out, rep = engine.inpaint(prev, damaged, nxt, mask, return_report=True)
    assert out.dtype == np.uint8 and rep.stages == engine.stages
    np.testing.assert_array_equal(out[~mask], damaged[~mask])
    np.testing.assert_array_equal(damaged, before)
    assert not (out[mask] == 255).all()


def test_big_regions_are_repaired_in_blended_tiles(tmp_path):
    f, g, d = _nets()
    path = save_weights(tmp_path / "w", get_config("cpu"), f, g)
    prev, truth, nxt, damaged, mask = _triplet(np.float32)
    whole = FlowInpainter(weights=path, device="cpu", margin=0)
    tiled = FlowInpainter(weights=path, device="cpu", margin=0)
    tiled.tile = 48
    a = whole.inpaint(prev, damaged, nxt, mask)
    b = tiled.inpaint(prev, damaged, nxt, mask)
    np.testing.assert_array_equal(b[~mask], damaged[~mask])
    assert np.isfinite(b).all()
    # tiles see less context, yet the blended result stays close to the untiled one
    assert float(np.abs(a[mask] - b[mask]).mean()) < 0.1 * float(np.ptp(truth))


def test_scattered_damage_takes_smaller_tiles(tmp_path, monkeypatch):
    import napari_flowinpaint.engine.inpainter as inpainter

    f, g, d = _nets()
    path = save_weights(tmp_path / "w", get_config("cpu"), f, g)
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.1, (640, 640)).astype(np.float32)
    mask = np.zeros(base.shape, bool)
    mask[20:60, 20:60] = mask[580:620, 580:620] = True  # two far corners
    damaged = np.where(mask, 1.0, base).astype(np.float32)
    sizes = []
    real = inpainter.learned_stages
    monkeypatch.setattr(inpainter, "learned_stages", lambda *a, **k: (
        sizes.extend([a[2].shape[-1]] * a[2].shape[0]), real(*a, **k))[1])
    engine = FlowInpainter(weights=path, device="cpu", margin=0)
    engine.tile = 576
    out = engine.inpaint(base, damaged, base, mask)
    # the 600 px box: 2 x 2 tiles of 320 px, 2 of them damaged, or 3 x 3 of 224 px (half
    # the side at most), 2 damaged: the smaller tiles, one per corner
    assert sizes == [224, 224]
    np.testing.assert_array_equal(out[~mask], damaged[~mask])
    assert np.isfinite(out).all()
    sizes.clear()
    one = base[:512, :512]
    dense = np.zeros(one.shape, bool)
    dense[::8] = True  # damage everywhere in one tile's worth: one big tile, not nine
    engine.inpaint(one, np.where(dense, 1.0, one).astype(np.float32), one, dense)
    assert sizes == [512]


@needs_bundled
def test_bundled_weights_run_all_stages_by_default():
    engine = FlowInpainter(device="cpu")
    assert engine.stages == ("initial_reference", "refined_reference", "guided_inpainting")
    assert engine.weights.path == BUNDLED


@needs_bundled
def test_each_repair_mode_runs_its_own_bundled_weights(tmp_path, monkeypatch):
    """The textured (default) and the faithful repair each load the file shipped for them;
    switching an engine's mode switches the weights only when they are the bundled ones."""
    faithful_path = bundled_weights_path("faithful")
    assert faithful_path.name == "flowinpaint-faithful-cpu.safetensors"
    assert BUNDLED.name == "flowinpaint-cpu.safetensors"
    textured = FlowInpainter(device="cpu")
    faithful = textured.with_mode("faithful")
    assert faithful.mode == "faithful" and faithful.weights.path == faithful_path
    assert textured.mode == "textured" and textured.weights.path == BUNDLED  # unchanged
    assert faithful.with_mode("faithful") is faithful
    assert faithful.with_mode("textured").weights.path == BUNDLED
    assert FlowInpainter(device="cpu", mode="faithful").weights.path == faithful_path
    # different networks: the two repairs of one hole differ
    g_t = textured.weights.generator.state_dict()
    g_f = faithful.weights.generator.state_dict()
    assert any(not torch.equal(g_t[k], g_f[k]) for k in g_t)
    # weights given by the user stay the same in both modes
    mine = FlowInpainter(BUNDLED, device="cpu").with_mode("faithful")
    assert mine.mode == "faithful" and mine.weights.path == BUNDLED
    # one file named by the environment serves both modes
    monkeypatch.setenv("NAPARI_FLOWINPAINT_WEIGHTS", str(faithful_path))
    assert bundled_weights_path() == bundled_weights_path("faithful") == faithful_path
    with pytest.raises(ValueError, match="unknown repair mode"):
        bundled_weights_path("sharp")


@needs_bundled
@pytest.mark.data
@pytest.mark.skipif(not (SHARED / "isbi2012_test" / "raw.tif").exists(),
                    reason="../shared/data/isbi2012_test is not available")
def test_bundled_weights_beat_flow_on_real_validation_crops():
    import tifffile

    from napari_flowinpaint.tasks.evaluation import evaluate

    stack = tifffile.imread(SHARED / "isbi2012_test" / "raw.tif")
    rep = evaluate(stack, spacing=1, crop=128, samples=8, ratios=(0.3,), seed=0,
                   methods=["flow", "flowinpaint"])
    res = rep["results"]
    assert res["flowinpaint"]["0.3"]["psnr_hole"] > res["flow"]["0.3"]["psnr_hole"] + 1.0
    assert res["flowinpaint"]["0.3"]["ssim"] > res["flow"]["0.3"]["ssim"]


# --------------------------------------------------------------------------- training
def _tiny_stacks():
    stack = (moving_stack(12, (80, 80), step=1.5, seed=5) * 1.0).astype(np.uint8)
    return [(stack, TrainSource("synthetic", (0, 12), (1, 2)))]


def test_sampler_gives_aligned_normalised_batches():
    sampler = TripletSampler(_tiny_stacks(), crop=64, rng=np.random.default_rng(0))
    b = sampler.batch(3)
    assert set(b) == {"prev", "next", "damaged", "mask", "reference", "truth"}
    for v in b.values():
        assert v.shape == (3, 1, 64, 64) and v.dtype == torch.float32
    m = b["mask"] > 0.5
    assert (b["damaged"][m] == 1).all() and 0.02 < float(m.float().mean()) < 0.95
    with pytest.raises(ValueError, match="no usable triplet"):
        stack = _tiny_stacks()[0][0]
        TripletSampler([(stack, TrainSource("s", (0, 12), (1,), skip=tuple(range(0, 12, 2))))],
                       crop=64, rng=0).sample()


def test_sampler_varies_what_differs_between_labs():
    stacks = _tiny_stacks()
    plain = TripletSampler(stacks, crop=48, rng=np.random.default_rng(1))
    lab = TripletSampler(stacks, crop=48, rng=np.random.default_rng(1), p_lab=1.0)
    for _ in range(4):
        a, b = plain.sample(), lab.sample()
        for k in a:
            assert b[k].shape == a[k].shape == (48, 48) and np.isfinite(b[k]).all()
        m = b["mask"] > 0.5
        assert (b["damaged"][m] == 1).all() and (b["damaged"][~m] == b["truth"][~m]).all()
    # noise, blur and another pixel size change the texture: the fine detail of the truth
    # (mean absolute difference of adjacent pixels) varies far more between samples
    def detail(sampler):
        return [float(np.abs(np.diff(sampler.sample()["truth"], axis=1)).mean())
                for _ in range(16)]

    a = detail(TripletSampler(stacks, crop=48, rng=np.random.default_rng(2)))
    b = detail(TripletSampler(stacks, crop=48, rng=np.random.default_rng(2), p_lab=1.0))
    assert np.std(b) / np.mean(b) > 1.5 * np.std(a) / np.mean(a)


def _read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_training_lowers_the_loss_and_resumes_exactly(tmp_path):
    torch.set_num_threads(2)
    s = TrainSettings(flow_iters=4, gan_iters=36, batch=2, crop=64, checkpoint_every=20,
                      log_every=4, gan_warmup=10, lr_gen=1e-3, lr_disc=1e-3, val_samples=4)
    res = train(tmp_path / "a", stacks=_tiny_stacks(), settings=s)
    assert res.weights is not None and res.step == 40
    rows = _read(tmp_path / "a" / "losses.csv")
    g = [float(r["g_l1"]) for r in rows if r["g_l1"]]
    assert np.mean(g[-3:]) < 0.7 * np.mean(g[:2])
    assert (tmp_path / "a" / "losses.png").stat().st_size > 1000
    assert any(r["d_loss"] for r in rows)  # the discriminator trained after the warm-up
    # stop after 20 iterations, resume, and land on the same weights as one straight run
    calls = []
    stop = train(tmp_path / "b", stacks=_tiny_stacks(), settings=s,
                 should_stop=lambda: calls.append(1) or len(calls) >= 20)
    assert stop.stopped and stop.step == 20 and stop.weights is not None  # stage-2 export
    done = train(tmp_path / "b", stacks=_tiny_stacks(), settings=s)
    assert done.step == 40
    a = load_weights(res.weights)
    b = load_weights(done.weights)
    for x, y in zip(a.generator.state_dict().values(), b.generator.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(x, y)
    assert [r["step"] for r in _read(tmp_path / "b" / "losses.csv")] == [
        r["step"] for r in rows]


def test_finetune_and_training_read_a_big_lazy_stack_a_crop_at_a_time(tmp_path, monkeypatch):
    import napari_flowinpaint.tasks.io.stacks as stacks
    from napari_flowinpaint.tasks.io import load_if_small, write_stack
    from napari_flowinpaint.tasks.training import finetune
    from napari_flowinpaint.tasks.training.common import load_sources

    f, g, d = _nets()
    base = save_weights(tmp_path / "base", get_config("cpu"), f, g, d)
    stack = moving_stack(16, (64, 64), step=1.0, seed=2).astype(np.uint8)
    lazy = CountingStack(stack)
    # a small lazy stack is read into memory (once, whole); a big one is left lazy
    assert isinstance(load_if_small(lazy), np.ndarray) and lazy.reads == [16]
    monkeypatch.setattr(stacks, "SMALL_BYTES", stack.nbytes - 1)  # 64 kB is "big" here
    lazy = CountingStack(stack)
    assert load_if_small(lazy) is lazy and lazy.reads == []
    res = finetune(lazy, tmp_path / "tuned", weights=base, iterations=3, batch=2, crop=32,
                   score_samples=2)
    assert res.weights.is_file() and res.iterations == 3
    assert lazy.reads and max(lazy.reads) == 1  # sections and crops, never a range
    # training from files: a big zarr source stays lazy, a small one (or a TIFF) in memory
    write_stack(tmp_path / "s.zarr", stack)
    (arr, _), = load_sources([TrainSource(str(tmp_path / "s.zarr"))])
    assert not isinstance(arr, np.ndarray) and arr.shape == stack.shape
    monkeypatch.setattr(stacks, "SMALL_BYTES", 1 << 30)
    (arr, _), = load_sources([TrainSource(str(tmp_path / "s.zarr"))])
    assert isinstance(arr, np.ndarray) and np.array_equal(arr, stack)


def test_finetune_reports_before_after_and_stops_cleanly(tmp_path):
    from napari_flowinpaint.tasks.training import finetune

    f, g, d = _nets()
    base = save_weights(tmp_path / "base", get_config("cpu"), f, g, d)
    stack = moving_stack(16, (64, 64), step=1.0, seed=2).astype(np.uint8)
    marked = np.zeros(stack.shape, bool)
    marked[3, 10:20, 10:20] = True
    seen = []
    res = finetune(stack, tmp_path / "tuned", damaged=marked, weights=base, iterations=30,
                   batch=2, crop=64, lr=1e-3, score_samples=3, callback=seen.append)
    assert res.weights.is_file() and res.iterations == 30 and not res.stopped
    assert res.psnr_after > res.psnr_before  # random start: training must help
    training = [info for info in seen if info["phase"] == "training"]
    assert training and training[-1]["step"] == 30 and "g_l1" in training[-1]["losses"]
    # every phase reports its progress: the scoring before, the training, the scoring after
    assert [p for i, p in enumerate(x["phase"] for x in seen)
            if i == 0 or seen[i - 1]["phase"] != p] == ["before", "training", "after"]
    assert seen[0]["step"] == 1 and seen[-1]["step"] == seen[-1]["total"] == 9
    assert load_weights(res.weights).meta["finetuned_from"] == str(base)
    # stopped while scoring the starting weights: nothing trained, nothing written
    first = finetune(stack, tmp_path / "first", weights=base, iterations=30, batch=2,
                     crop=64, score_samples=2, should_stop=lambda: True)
    assert first.stopped and first.weights is None and first.iterations == 0
    assert first.psnr_before is None and not (first.run_dir / "checkpoint.pt").exists()
    # stopped while training (at the first progress report): a checkpoint to resume from
    ticks = []
    stopped = finetune(stack, tmp_path / "stop", weights=base, iterations=30, batch=2,
                       crop=64, score_samples=2, callback=ticks.append,
                       should_stop=lambda: any(t["phase"] == "training" for t in ticks))
    assert stopped.stopped and stopped.weights is None and 1 <= stopped.iterations < 30
    assert stopped.psnr_before is not None and stopped.psnr_after is None
    assert (stopped.run_dir / "checkpoint.pt").is_file()
    # stopped while scoring the fine-tuned weights: they are written, only the score is missing
    ticks = []
    late = finetune(stack, tmp_path / "late", weights=base, iterations=10, batch=2, crop=64,
                    score_samples=2, callback=ticks.append,
                    should_stop=lambda: any(t["phase"] == "training" and t["step"] == 10
                                            for t in ticks))
    assert late.stopped and late.weights.is_file() and late.iterations == 10
    assert late.psnr_before is not None and late.psnr_after is None
    with pytest.raises(ValueError, match="too short"):
        finetune(stack[:5], tmp_path / "x", weights=base)


# --------------------------------------------------------------------------- packaging
@needs_bundled
def test_wheel_ships_the_weights_and_a_plain_install_finds_them(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w",
                          str(wheel_dir)], check=True, capture_output=True)
    (whl,) = wheel_dir.glob("*.whl")
    subprocess.run(pip + ["install", "--no-deps", "--target", str(target), str(whl)],
                   check=True, capture_output=True)
    code = ("import napari_flowinpaint as n; from napari_flowinpaint.engine import "
            "FlowInpainter; e = FlowInpainter(device='cpu'); "
            "print(n.__file__); print(e.weights.path); print(e.stages[-1])")
    env = {k: v for k, v in os.environ.items() if k != "NAPARI_FLOWINPAINT_WEIGHTS"}
    env["PYTHONPATH"] = str(target)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=tmp_path, env=env).stdout.split()
    assert out[0].startswith(str(target)) and out[1].startswith(str(target))
    assert out[1].endswith("_weights/flowinpaint-cpu.safetensors")
    assert out[2] == "guided_inpainting"
