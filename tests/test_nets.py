"""Tests of the learned networks (engine/nets): shapes, gradients, exact sub-results, losses."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from napari_flowinpaint.engine.flow import warp
from napari_flowinpaint.engine.nets import (
    CONFIG_NAMES,
    GeneratorConfig,
    GuidedInpaintingNet,
    HybridDiscriminator,
    NetsConfig,
    RefinedReferenceNet,
    build_networks,
    contextual_attention,
    count_parameters,
    discriminator_hinge_loss,
    generator_hinge_loss,
    get_config,
    gradient_pyramid_loss,
    hinge_d_loss,
    hinge_g_loss,
    local_correlation,
    masked_l1,
    masked_l2,
    pyramid_loss,
    ssim,
    ssim_loss,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _mask(b, h, w, *, y=(0.3, 0.7), x=(0.2, 0.6)):
    m = torch.zeros(b, 1, h, w)
    m[..., int(h * y[0]) : int(h * y[1]), int(w * x[0]) : int(w * x[1])] = 1
    return m


# ---------------------------------------------------------------- correlation and warp


def test_correlation_matches_direct_loop():
    f1, f2 = torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6)
    r = 2
    out = local_correlation(f1, f2, radius=r)
    assert out.shape == (2, 25, 5, 6)
    ref = np.zeros(out.shape, np.float32)
    f1, f2 = f1.numpy(), f2.numpy()
    for b in range(2):
        for y in range(5):
            for x in range(6):
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < 5 and 0 <= xx < 6:
                            k = (dy + r) * (2 * r + 1) + (dx + r)
                            ref[b, k, y, x] = np.dot(f1[b, :, y, x], f2[b, :, yy, xx]) / 3
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_correlation_with_flow_warps_first():
    f1, f2 = torch.randn(1, 4, 8, 9), torch.randn(1, 4, 8, 9)
    flow = torch.randn(1, 2, 8, 9)
    torch.testing.assert_close(
        local_correlation(f1, f2, flow, radius=1), local_correlation(f1, warp(f2, flow), radius=1)
    )
    # zero displacement channel of an identical pair is the mean squared feature
    c = local_correlation(f1, f1, radius=1)
    torch.testing.assert_close(c[:, 4], (f1 * f1).mean(1))
    with pytest.raises(ValueError, match="one shape"):
        local_correlation(f1, f2[..., :5], radius=1)


def test_warp_by_known_flow_recovers_shifted_image():
    img = torch.rand(1, 1, 24, 30)
    dx, dy = 3, -2
    shifted = torch.roll(img, shifts=(dy, dx), dims=(2, 3))  # shifted(x) = img(x - d)
    flow = torch.empty(1, 2, 24, 30)
    flow[:, 0], flow[:, 1] = dx, dy
    back = warp(shifted, flow)  # back(x) = shifted(x + d) = img(x)
    torch.testing.assert_close(back[..., 3:-3, 4:-4], img[..., 3:-3, 4:-4])


# ---------------------------------------------------------------- refined reference net


@pytest.mark.parametrize("size", [(64, 64), (37, 53)])
def test_flow_net_shapes(size):
    h, w = size
    net = RefinedReferenceNet()
    ref, dam = torch.rand(2, 1, h, w), torch.rand(2, 1, h, w)
    out = net(ref, dam, _mask(2, h, w))
    assert out.reference.shape == (2, 1, h, w)
    assert len(out.flows) == len(net.strides) == 5
    for f, s in zip(out.flows, net.strides, strict=True):
        assert f.shape == (2, 2, math.ceil(h / s), math.ceil(w / s))
    torch.testing.assert_close(out.reference, warp(ref, out.flows[0]))
    # heads start near zero: an untrained net nearly returns the initial reference
    assert out.flows[0].abs().max() < 0.5


def test_flow_net_ignores_hole_values():
    net = RefinedReferenceNet()
    ref, dam, m = torch.rand(1, 1, 40, 40), torch.rand(1, 1, 40, 40), _mask(1, 40, 40)
    a = net(ref, dam, m).flows[0]
    b = net(ref, torch.where(m > 0, torch.ones_like(dam), dam), m).flows[0]
    torch.testing.assert_close(a, b)


def test_flow_net_gradients_reach_all_parameters():
    net = RefinedReferenceNet()
    ref, gt = torch.rand(1, 1, 64, 48), torch.rand(1, 1, 64, 48)
    m = _mask(1, 64, 48)
    out = net(ref, gt, m)
    pyramid_loss(out.flows, ref, gt, m).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_flow_net_checks_inputs():
    net = RefinedReferenceNet()
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="differ"):
        net(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9), torch.rand(1, 1, 8, 8))


# ---------------------------------------------------------------- contextual attention


def _two_region_features(h=12, w=12):
    f = torch.zeros(1, 2, h, w)
    f[:, 0, :, : w // 2] = 1.0  # left: pattern a = (1, 0)
    f[:, 1, :, w // 2 :] = 1.0  # right: pattern b = (0, 1)
    return f


def test_attention_copies_matching_known_patches():
    f = _two_region_features()
    m = torch.zeros(1, 1, 12, 12)
    m[..., 4:8, 8:11] = 1  # hole inside the right region
    out = contextual_attention(f, m, scale=10.0)
    known = m[0, 0] == 0
    assert torch.equal(out[0][:, known], f[0][:, known])
    filled = out[0][:, m[0, 0] > 0]
    # the hole's patches match the right region's keys (cosine 1) far better than the left's
    assert (filled[1] > 0.99).all() and (filled[0] < 0.01).all()


def test_attention_pools_big_maps_and_skips_degenerate_cases():
    f = _two_region_features(40, 40)
    m = torch.zeros(1, 1, 40, 40)
    m[..., 10:30, 25:35] = 1
    out = contextual_attention(f, m, max_positions=100)  # pooled by 4 inside
    assert out.shape == f.shape
    assert torch.equal(out[0][:, m[0, 0] == 0], f[0][:, m[0, 0] == 0])
    assert (out[0, 1][m[0, 0] > 0] > 0.95).all()  # pooled cells mix a little near the border
    assert torch.equal(contextual_attention(f, torch.zeros_like(m)), f)  # no hole
    assert torch.equal(contextual_attention(f, torch.ones_like(m)), f)  # no known key


# ---------------------------------------------------------------- generator


@pytest.mark.parametrize("size", [(64, 64), (45, 71)])
def test_generator_shapes_and_exact_compositing(size):
    h, w = size
    net = GuidedInpaintingNet()
    x = [torch.rand(2, 1, h, w) for _ in range(4)]
    m = _mask(2, h, w)
    out = net(*x, m)
    assert out.inpainted.shape == out.raw.shape == (2, 1, h, w)
    keep = m == 0
    assert torch.equal(out.inpainted[keep], x[3][keep])
    assert torch.equal(out.inpainted[~keep], out.raw[~keep])
    assert out.raw.min() >= 0 and out.raw.max() <= 1


def test_generator_without_fal_is_a_config():
    with_fal = GuidedInpaintingNet(GeneratorConfig())
    without = GuidedInpaintingNet(GeneratorConfig(use_fal=False))
    assert any(type(m).__name__ == "FeatureAggregation" for m in with_fal.modules())
    assert not any(type(m).__name__ == "FeatureAggregation" for m in without.modules())
    # FAL costs about one plain 3 x 3 convolution: parameter counts within 15 %
    assert abs(count_parameters(with_fal) / count_parameters(without) - 1) < 0.15
    x = torch.rand(1, 1, 32, 32)
    assert without(x, x, x, x, _mask(1, 32, 32)).raw.shape == (1, 1, 32, 32)


def test_residual_generator_starts_from_the_reference_and_learns_a_correction():
    torch.manual_seed(0)
    net = GuidedInpaintingNet()
    ref, prev, nxt, dam = (torch.rand(2, 1, 48, 48) for _ in range(4))
    m = _mask(2, 48, 48)
    net.make_residual()
    assert net.config.residual
    out = net(ref, prev, nxt, dam, m)
    # the zeroed projection passes the reference through exactly, composited with the known
    assert torch.equal(out.raw, ref)
    assert torch.equal(out.inpainted, torch.where(m > 0.5, ref, dam))
    # one step on a target = reference + 0.1 moves the output toward it, inside [0, 1]
    target = (ref + 0.1).clamp(0, 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    before = (out.raw - target).abs().mean().item()
    for _ in range(5):
        loss = (net(ref, prev, nxt, dam, m).raw - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = net(ref, prev, nxt, dam, m).raw
    assert (after - target).abs().mean().item() < before
    assert after.min() >= 0 and after.max() <= 1
    # the switch is part of the configuration, so weights files rebuild it
    assert GuidedInpaintingNet(GeneratorConfig(residual=True)).config.residual
    assert NetsConfig.from_dict(NetsConfig(generator=GeneratorConfig(residual=True))
                                .to_dict()).generator.residual


def test_gan_gradients_reach_all_parameters():
    gen, disc = GuidedInpaintingNet(), HybridDiscriminator()
    gt = torch.rand(2, 1, 64, 48)
    m = _mask(2, 64, 48)
    damaged = torch.where(m > 0, torch.ones_like(gt), gt)
    out = gen(gt, gt, gt, damaged, m)
    loss = masked_l1(out.raw, gt, m, hole_weight=6.0) + 0.1 * generator_hinge_loss(
        disc(out.inpainted, m)
    )
    loss.backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    disc.zero_grad()
    discriminator_hinge_loss(disc(gt, m), disc(out.inpainted.detach(), m)).backward()
    for name, p in disc.named_parameters():
        assert p.grad is not None, name
        # the last biases' hinge gradients cancel while all logits are in (-1, 1)
        assert name.endswith("bias") or p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- discriminator


def test_discriminator_parts_and_local_weight():
    disc = HybridDiscriminator()
    x, m = torch.rand(2, 1, 64, 48), _mask(2, 64, 48)
    glob, loc = disc(x, m)
    assert glob.logits.shape == (2, 1, 4, 3) and glob.weight is None
    assert loc.logits.shape == loc.weight.shape == (2, 1, 8, 6)
    assert loc.weight.max() == 1 and loc.weight.min() == 0
    _, loc0 = disc(x, torch.zeros_like(m))
    assert loc0.weight.sum() == 0
    # no hole: the local part contributes nothing to the losses
    assert hinge_g_loss(loc0.logits, loc0.weight) == 0


# ---------------------------------------------------------------- losses


def test_masked_l1_values():
    pred, target = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    m = torch.zeros(1, 1, 4, 4)
    m[..., :2, :] = 1
    assert masked_l1(pred, pred, m, hole_weight=6.0) == 0
    torch.testing.assert_close(masked_l1(pred, target, m, hole_weight=6.0), torch.tensor(3.5))
    torch.testing.assert_close(
        masked_l1(pred, target, m, hole_weight=0.0, valid_weight=2.0), torch.tensor(1.0)
    )


def test_masked_l2_values_and_minimiser():
    m = torch.zeros(1, 1, 4, 4)
    m[..., :2, :] = 1
    pred, target = 2 * torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    # squared error 4 everywhere: (6 * 4 * 8 + 1 * 4 * 8) / 16
    torch.testing.assert_close(masked_l2(pred, target, m, hole_weight=6.0), torch.tensor(14.0))
    with pytest.raises(ValueError, match="one shape"):
        masked_l2(pred, target[..., :2], m)
    # a constant fitted to {0, 0, 1} by gradient descent: L2 goes to the mean, L1 to the median
    x = torch.tensor([0.0, 0.0, 1.0]).view(1, 1, 1, 3)
    for loss, expected in ((masked_l2, 1 / 3), (masked_l1, 0.0)):
        c = torch.full((1, 1, 1, 1), 0.5, requires_grad=True)
        opt = torch.optim.SGD([c], lr=0.02)
        for _ in range(600):
            opt.zero_grad()
            loss(c.expand_as(x), x, torch.ones_like(x)).backward()
            opt.step()
        assert abs(c.item() - expected) < 0.02


def test_loss_config_rejects_unknown_recon():
    from napari_flowinpaint.engine.nets.config import LossConfig

    assert LossConfig(recon="l2").recon == "l2"
    with pytest.raises(ValueError, match="'l1' or 'l2'"):
        LossConfig(recon="huber")


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((48, 40)).astype(np.float32)
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    ours = ssim(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])
    ref = structural_similarity(
        a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert abs(float(ours[0]) - ref) < 1e-4
    x = torch.from_numpy(a)[None, None]
    assert abs(float(ssim_loss(x, x))) < 1e-6
    assert 0.0 < float(ssim_loss(x, torch.from_numpy(b)[None, None])) < 2.0
    # smaller than the window: the window shrinks
    assert ssim(torch.rand(1, 1, 5, 7), torch.rand(1, 1, 5, 7)).shape == (1,)


def test_gradient_pyramid_loss():
    x = torch.rand(2, 1, 32, 32)
    assert gradient_pyramid_loss(x, x) == 0
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    shifted_mean = x + 0.1
    # blur costs more than a constant offset of similar L1 size (which only the residual sees)
    assert gradient_pyramid_loss(blurred, x) > 0
    assert gradient_pyramid_loss(shifted_mean, x) == pytest.approx(0.1, rel=1e-4)
    assert gradient_pyramid_loss(blurred, x) > gradient_pyramid_loss(shifted_mean, x)


def test_pyramid_loss_zero_for_perfect_flow_and_positive_otherwise():
    gt = torch.rand(1, 1, 32, 32)
    m = _mask(1, 32, 32)
    flows = [torch.zeros(1, 2, 32 // s, 32 // s) for s in (1, 4, 8)]
    assert pyramid_loss(flows, gt, gt, m) == 0
    # reference moved by 2 px: the exact flow scores lower than zero flow at full resolution
    ref = torch.roll(gt, shifts=2, dims=3)
    exact = torch.zeros(1, 2, 32, 32)
    exact[:, 0] = 2.0
    zero = torch.zeros(1, 2, 32, 32)
    assert pyramid_loss([exact], ref, gt, m) < 0.5 * pyramid_loss([zero], ref, gt, m)
    with pytest.raises(ValueError, match="one weight per flow"):
        pyramid_loss(flows, gt, gt, m, weights=(1.0,))


def test_hinge_losses_on_known_logits():
    real = torch.tensor([2.0, 0.5])
    fake = torch.tensor([-2.0, 0.5])
    # D: mean(relu(1 - real)) + mean(relu(1 + fake)) = 0.25 + 0.75
    torch.testing.assert_close(hinge_d_loss(real, fake), torch.tensor(1.0))
    torch.testing.assert_close(hinge_g_loss(fake), torch.tensor(0.75))
    w = torch.tensor([0.0, 1.0])
    torch.testing.assert_close(hinge_d_loss(real, fake, w), torch.tensor(2.0))
    torch.testing.assert_close(hinge_g_loss(fake, w), torch.tensor(-0.5))


def test_bfloat16_autocast_keeps_flows_and_outputs_float32():
    flow, gen, _ = (n.to(memory_format=torch.channels_last) for n in build_networks("cpu"))
    x, m = torch.rand(1, 1, 40, 40), _mask(1, 40, 40)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = flow(x, x, m)
        g = gen(out.reference, x, x, x, m)
    assert all(f.dtype == torch.float32 for f in out.flows)
    assert out.reference.dtype == g.inpainted.dtype == torch.float32
    keep = m == 0
    assert torch.equal(g.inpainted[keep], x[keep])
    with torch.no_grad():
        ref32 = flow(x, x, m).reference
    assert (out.reference - ref32).abs().max() < 0.05


# ---------------------------------------------------------------- configurations


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_round_trip(name):
    cfg = get_config(name)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert NetsConfig.from_dict(d) == cfg
    with pytest.raises(ValueError, match="unknown"):
        NetsConfig.from_dict({**d, "extra": 1})
    with pytest.raises(ValueError, match="unknown GeneratorConfig keys"):
        NetsConfig.from_dict({**d, "generator": {"widths": [1]}})


def test_config_errors():
    with pytest.raises(ValueError, match="expected one of"):
        get_config("tpu")
    with pytest.raises(ValueError, match="stride >= 4"):
        GeneratorConfig(stem=1, attention_levels=(2,))


def test_cpu_config_sizes():
    flow, gen, disc = build_networks("cpu")
    assert 0.3e6 < count_parameters(flow) < 2e6
    assert 1e6 < count_parameters(gen) < 4e6


def test_gpu_config_builds_and_runs_on_a_tiny_input():
    flow, gen, disc = build_networks("gpu")
    # close to the authors' release: ~7.6 M and ~23 M parameters
    assert 6.5e6 < count_parameters(flow) < 8.5e6
    assert 20e6 < count_parameters(gen) < 26e6
    x, m = torch.rand(1, 1, 40, 36), _mask(1, 40, 36)
    with torch.no_grad():
        out = flow(x, x, m)
        assert out.reference.shape == (1, 1, 40, 36) and len(out.flows) == 6
        g = gen(out.reference, x, x, x, m)
        assert g.inpainted.shape == (1, 1, 40, 36)
        assert [o.logits.shape[1] for o in disc(g.inpainted, m)] == [1, 1]
