"""The fast paths of the engine give the results of the plain ones (issue 30).

Memory layouts kept consistent through the networks and tiles batched through them must not
change a repair beyond float rounding.
"""

import numpy as np
import pytest
import torch
from _synth import moving_stack

from napari_flowinpaint.engine import FlowInpainter, save_weights
from napari_flowinpaint.engine.nets import (
    build_networks,
    contextual_attention,
    get_config,
    local_correlation,
)

CL = torch.channels_last


def _nets(seed=0):
    torch.manual_seed(seed)
    f, g, _ = build_networks("cpu")
    return f.eval(), g.eval()


def test_correlation_in_either_layout():
    gen = torch.Generator().manual_seed(0)
    f1, f2 = torch.randn(2, 8, 12, 10, generator=gen), torch.randn(2, 8, 12, 10, generator=gen)
    flow = torch.randn(2, 2, 12, 10, generator=gen)
    plain = local_correlation(f1, f2, flow, radius=2)
    assert plain.is_contiguous()
    # the networks' case: channels-last features against a plain warped map; the products
    # and sums are those of two channels-last maps, to the bit
    f1c = f1.contiguous(memory_format=CL)
    fast = local_correlation(f1c, f2, flow, radius=2)
    assert fast.is_contiguous(memory_format=CL) and not fast.is_contiguous()
    assert torch.equal(fast, local_correlation(f1c, f2.contiguous(memory_format=CL), flow,
                                               radius=2))
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-6)  # sums in another order


def _correlation_by_shifts(f1, f2, r):
    """The cost volume as first written: one shifted product per displacement."""
    h, w = f1.shape[-2:]
    f2p = torch.nn.functional.pad(f2, (r, r, r, r))
    return torch.stack([(f1 * f2p[:, :, dy:dy + h, dx:dx + w]).sum(1) / f1.shape[1]
                        for dy in range(2 * r + 1) for dx in range(2 * r + 1)], 1)


def test_correlation_by_row_segments_is_correlation_by_shifts():
    gen = torch.Generator().manual_seed(8)
    for shape, r in (((2, 8, 12, 37), 3), ((1, 5, 9, 16), 0), ((3, 4, 20, 7), 4)):
        f1 = torch.randn(shape, generator=gen, requires_grad=True)
        f2 = torch.randn(shape, generator=gen, requires_grad=True)
        want = _correlation_by_shifts(f1, f2, r)
        got = local_correlation(f1, f2, radius=r)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
        # training takes gradients through it
        weights = torch.randn(want.shape, generator=gen)
        g_want = torch.autograd.grad((want * weights).sum(), (f1, f2))
        g_got = torch.autograd.grad((got * weights).sum(), (f1, f2))
        for a, b in zip(g_got, g_want, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_attention_keeps_the_layout_of_its_features():
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 6, 10, 12, generator=gen)
    mask = torch.zeros(2, 1, 10, 12)
    mask[:, :, 3:6, 4:9] = 1
    plain = contextual_attention(feats, mask)
    fast = contextual_attention(feats.contiguous(memory_format=CL), mask)
    assert fast.is_contiguous(memory_format=CL) and not fast.is_contiguous()
    assert torch.equal(fast, plain)


def _attention_by_columns(f, mask, scale=10.0):
    """Contextual attention as first written (unfolded patches as columns, no pooling)."""
    b, c, h, w = f.shape
    hole = mask > 0
    m = hole.to(f.dtype)
    hole_p = m.flatten(1) > 0
    key_ok = (torch.nn.functional.max_pool2d(m, 3, stride=1, padding=1).flatten(1) == 0)
    key_ok &= ~hole_p
    patches = torch.nn.functional.unfold(f, 3, padding=1)
    patches = patches / patches.norm(dim=1, keepdim=True).clamp_min(1e-4)
    values = f.flatten(2)
    outs = []
    for i in range(b):
        qi, ki = hole_p[i].nonzero().squeeze(1), key_ok[i].nonzero().squeeze(1)
        att = torch.softmax(scale * (patches[i][:, qi].T @ patches[i][:, ki]), dim=1)
        out = values[i].clone()
        out[:, qi] = values[i][:, ki] @ att.T
        outs.append(out.view(c, h, w))
    return torch.where(hole, torch.stack(outs), f)


def test_attention_by_rows_is_attention_by_columns():
    gen = torch.Generator().manual_seed(5)
    feats = torch.randn(3, 16, 20, 24, generator=gen)
    mask = (torch.rand(3, 1, 20, 24, generator=gen) > 0.7).float()
    mask[:, :, 5:12, 6:15] = 1
    want = _attention_by_columns(feats, mask)
    got = contextual_attention(feats.contiguous(memory_format=CL), mask, chunk=50)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert not torch.equal(got, feats)  # the holes were filled


def test_networks_agree_in_either_layout():
    f, g = _nets()
    gen = torch.Generator().manual_seed(2)
    ref, prev, nxt, dam = (torch.rand(2, 1, 64, 64, generator=gen) for _ in range(4))
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 20:44, 10:50] = 1
    with torch.inference_mode():
        a_ref = f(ref, dam, mask).reference
        a_out = g(a_ref, prev, nxt, dam, mask).raw
        f.to(memory_format=CL)
        g.to(memory_format=CL)
        b_ref = f(*(x.contiguous(memory_format=CL) for x in (ref, dam, mask))).reference
        b_out = g(b_ref, prev, nxt, dam, mask).raw
    assert float((a_ref - b_ref).abs().max()) < 1e-5
    assert float((a_out - b_out).abs().max()) < 1e-5


def test_batched_tiles_give_the_repair_of_one_tile_at_a_time(tmp_path, monkeypatch):
    import napari_flowinpaint.engine.inpainter as inpainter

    f, g = _nets(3)
    path = save_weights(tmp_path / "w", get_config("cpu"), f, g)
    prev, truth, nxt = (s.astype(np.float32) for s in moving_stack(3, (160, 160), step=2.0,
                                                                    seed=4))
    mask = np.zeros(truth.shape, bool)
    mask[10:150:7, :] = True  # damage in every tile
    mask[60:110, 30:120] = True
    damaged = np.where(mask, 1.0, truth).astype(np.float32)
    batches = []
    real = inpainter.learned_stages
    monkeypatch.setattr(inpainter, "learned_stages", lambda *a, **k: (
        batches.append(tuple(a[2].shape)), real(*a, **k))[1])
    engine = FlowInpainter(weights=path, device="cpu", margin=0)
    engine.tile = 64
    engine.workers = 1  # one batch after the other, on the caller's threads
    one, one_conf = engine.inpaint(prev, damaged, nxt, mask, return_confidence=True)
    # the box (rows 10-143, 160 columns) takes 3 x 3 tiles fitted to it (48 x 64 px), one batch
    assert batches == [(9, 1, 48, 64)]
    batches.clear()
    engine.batch_pixels = 64 * 64  # one tile per call: the engine before batching
    each, each_conf = engine.inpaint(prev, damaged, nxt, mask, return_confidence=True)
    assert batches == [(1, 1, 48, 64)] * 9
    np.testing.assert_array_equal(one[~mask], damaged[~mask])
    span = float(np.ptp(truth))
    assert float(np.abs(one - each).max()) < 1e-4 * span
    assert float(np.abs(one_conf - each_conf).max()) < 1e-3


def test_batches_side_by_side_give_the_repair_one_after_the_other(tmp_path, monkeypatch):
    import napari_flowinpaint.engine.inpainter as inpainter

    f, g = _nets(5)
    path = save_weights(tmp_path / "w", get_config("cpu"), f, g)
    prev, truth, nxt = (s.astype(np.float32) for s in moving_stack(3, (160, 160), step=2.0,
                                                                    seed=6))
    mask = np.zeros(truth.shape, bool)
    mask[12:150:9, :] = True
    mask[50:100, 20:140] = True
    damaged = np.where(mask, 1.0, truth).astype(np.float32)
    engine = FlowInpainter(weights=path, device="cpu", margin=0)
    engine.tile = 64
    engine.batch_pixels = 9 * 64 * 64
    threads = []
    real = inpainter.learned_stages
    monkeypatch.setattr(inpainter, "learned_stages", lambda *a, **k: (
        threads.append(torch.get_num_threads()), real(*a, **k))[1])
    engine.workers = 1
    alone = engine.inpaint(prev, damaged, nxt, mask)
    outer = torch.get_num_threads()
    assert threads == [outer]
    threads.clear()
    engine.workers = 3
    side = engine.inpaint(prev, damaged, nxt, mask)
    # 9 tiles in 3 batches of 3 (batch_pixels shared by the workers), torch on one thread
    # in each worker, the caller's threads unchanged afterwards
    assert threads == [1, 1, 1] and torch.get_num_threads() == outer
    assert float(np.abs(side - alone).max()) < 1e-4 * float(np.ptp(truth))


def test_side_by_side_keeps_order_and_raises_errors():
    from napari_flowinpaint.engine._parallel import side_by_side

    assert list(side_by_side(lambda i: i * i, range(7), 3)) == [i * i for i in range(7)]
    outer = torch.get_num_threads()

    def boom(i):
        if i == 2:
            raise ValueError("tile 2")
        return i

    with pytest.raises(ValueError, match="tile 2"):
        list(side_by_side(boom, range(5), 2))
    assert torch.get_num_threads() == outer


# ------------------------------------------------------------------ the speed benchmark
def _bench():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_repair

    return bench_repair


def test_benchmark_masks_have_their_style_and_fraction():
    from napari_flowinpaint.tasks.simulation import random_mask

    bench = _bench()
    blobs = bench.make_mask("blobs", 256, 0.3)
    # the masks of the runs before the styles, so old and new numbers compare
    np.testing.assert_array_equal(blobs, random_mask((256, 256), 0.3, np.random.default_rng(0),
                                                     kind="blobs"))
    spots = bench.make_mask("scattered", 256, 0.1)
    assert 0.099 <= spots.mean() <= 0.11
    blocks = spots.reshape(4, 64, 4, 64).any(axis=(1, 3))
    assert blocks.all()  # spread over the whole section
    assert abs(bench.make_mask("bands", 256, 0.1).mean() - 0.1) <= 0.002
    assert bench.make_mask("whole", 64, 0.3).all()


def test_benchmark_json_rows_and_targets(tmp_path):
    import json

    bench = _bench()
    out = tmp_path / "b.json"
    assert bench.main(["--sizes", "96", "--fractions", "0.3", "--styles", "blobs", "whole",
                       "--repeats", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["load"] == 0 and data["threads"] >= 1
    rows = data["rows"]
    assert [(r["size"], r["style"]) for r in rows] == [(96, "blobs"), (96, "whole")]
    assert rows[1]["fraction"] == 1.0 and abs(rows[0]["fraction"] - 0.3) < 0.02
    for r in rows:  # what benchmarks/tables.py reads, the same stage keys in every row
        assert list(r["stages"]) == list(rows[0]["stages"])
        assert r["median_s"] > 0 and r["stages"]["overhead"] >= 0
        assert r["s_per_damaged_mp"] == pytest.approx(
            r["median_s"] / (r["fraction"] * 96 * 96 / 1e6))
    fake = [{"size": s, "load": n, "style": "blobs", "fraction": 0.3, "median_s": t}
            for s, n, t in ((1024, 0, 0.9), (2048, 0, 4.0), (1024, 2, 2.0), (2048, 2, 7.0))]
    assert bench.check_targets(fake) == [
        "1024^2 at 30 % idle <= 1.0 s: met (0.900 s)",
        "load 0: 2048^2 / 1024^2 at 30 % <= 4: MISSED (4.44)",
        "load 2: 2048^2 / 1024^2 at 30 % <= 4: met (3.50)",
        "1024^2 at 30 % beside 2 busy processes <= 2x idle: MISSED (2.22x)",
        "2048^2 at 30 % beside 2 busy processes <= 2x idle: met (1.75x)"]


def test_both_flows_at_once_give_the_flows_one_after_the_other():
    import cv2

    from napari_flowinpaint.engine.reference import initial_reference_unit

    prev, _, nxt = (s.astype(np.float32) / 255 for s in moving_stack(3, (300, 300), step=3.0,
                                                                     seed=6))
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)  # a worker held to one thread: one flow after the other
        one = initial_reference_unit(prev, nxt, return_warps=True)
        cv2.setNumThreads(2)
        both = initial_reference_unit(prev, nxt, return_warps=True)
    finally:
        cv2.setNumThreads(before)
    for a, b in zip(one, both, strict=True):
        np.testing.assert_array_equal(a, b)


def test_fused_convolution_and_activation_match_the_two_modules():
    from torch import nn

    from napari_flowinpaint.engine.nets._blocks import ConvAct

    torch.manual_seed(7)
    for stride, dil, k in ((1, 1, 3), (2, 1, 3), (1, 4, 3), (1, 1, 1)):
        block = ConvAct(nn.Conv2d(12, 8, k, stride=stride, padding=dil * (k // 2),
                                  dilation=dil), nn.LeakyReLU(0.1, inplace=True))
        assert list(block.state_dict()) == ["0.weight", "0.bias"]  # weights files unchanged
        for x in (torch.randn(3, 12, 40, 36), torch.randn(1, 12, 9, 7)):
            for layout in (torch.contiguous_format, CL):
                xl = x.contiguous(memory_format=layout)
                want = torch.nn.functional.leaky_relu(block[0](xl), 0.1)
                with torch.no_grad():
                    got = block(xl)
                torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
        trained = block(torch.randn(2, 12, 16, 16))  # with autograd: the modules' own path
        assert trained.requires_grad


def test_tiles_are_fitted_to_the_region_and_cover_it():
    from napari_flowinpaint.engine.tiles import fitted_spans, plan_tiles

    # 1024 px take two windows of 544 px (not three of 512): fewer, equal tiles
    assert fitted_spans(1024, 576, 36) == [(0, 544), (480, 1024)]
    for n in (100, 577, 1000, 1024, 2048, 3001):
        spans = fitted_spans(n, 576, 36)
        sides = {b - a for a, b in spans}
        assert len(sides) == 1 and max(sides) <= 576 and spans[0][0] == 0 and spans[-1][1] == n
        assert all(a1 - b0 <= -36 for (_, b0), (a1, _) in zip(spans, spans[1:], strict=False))
    whole = np.ones((1024, 1024), bool)
    tiles, overlap = plan_tiles(whole, 576)
    assert len(tiles) == 4 and overlap == 36
    corner = np.zeros((2048, 2048), bool)
    corner[:40, :40] = True  # one small spot: one small tile, not a 576 px one
    tiles, _ = plan_tiles(corner, 576)
    assert len(tiles) == 1 and tiles[0][0][1] - tiles[0][0][0] <= 288
