"""Losses of FlowInpaint (section 3.4), all differentiable and free of downloaded weights.

Every function takes images as (B, C, H, W) tensors in [0, 1] and masks with 1 on the
DAMAGED pixels (the paper's ``1 - m`` in Eq. 14 and ``m_hat`` in Eq. 18).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..flow import warp

__all__ = [
    "discriminator_hinge_loss",
    "generator_hinge_loss",
    "gradient_pyramid_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "masked_l1",
    "masked_l2",
    "pyramid_loss",
    "ssim",
    "ssim_loss",
]


def _check_pair(x, z):
    if x.ndim != 4 or x.shape != z.shape:
        raise ValueError(
            f"expected two tensors of one shape (B, C, H, W), got {tuple(x.shape)} and "
            f"{tuple(z.shape)}."
        )


def masked_l1(pred, target, mask, *, hole_weight: float = 1.0, valid_weight: float = 1.0):
    """Weighted L1 (Eq. 15) on the damaged and the valid part: the terms of Eq. 14 and 18.

    ``mean(|pred - target| * (hole_weight * mask + valid_weight * (1 - mask)))``: the mean
    runs over all pixels (as in Liu et al. 2018), so each term scales with its area.
    Eq. 18 is ``masked_l1(raw, x, mask, hole_weight=lambda_r)``; Eq. 14's first two terms are
    ``masked_l1(warped, x, mask, hole_weight=lambda_c)``.
    """
    return _masked_mean(pred, target, mask, hole_weight, valid_weight, squared=False)


def masked_l2(pred, target, mask, *, hole_weight: float = 1.0, valid_weight: float = 1.0):
    """Weighted squared error: :func:`masked_l1` with ``(pred - target) ** 2``.

    Our option for Eq. 18 (``LossConfig.recon = "l2"``): the minimiser of a squared error is
    the conditional mean, which is what PSNR rewards; L1's is the conditional median.
    """
    return _masked_mean(pred, target, mask, hole_weight, valid_weight, squared=True)


def _masked_mean(pred, target, mask, hole_weight, valid_weight, *, squared):
    _check_pair(pred, target)
    err = (pred - target) ** 2 if squared else (pred - target).abs()
    mask = mask.to(pred.dtype)
    weight = hole_weight * mask + valid_weight * (1.0 - mask)
    return (err * weight).mean()


def _gaussian_window(size: int, sigma: float, device, dtype):
    t = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def ssim(x, z, *, window_size: int = 11, sigma: float = 1.5, data_range: float = 1.0):
    """Mean structural similarity (Wang et al. 2004) with a Gaussian window, per image.

    Parameters
    ----------
    x, z : Tensor, shape (B, C, H, W)
    window_size, sigma : keyword
        Gaussian window (11 and 1.5 as in Wang et al.); shrunk (keeping it odd) for images
        smaller than the window, e.g. the coarse levels of the pyramid loss.
    data_range : float, keyword
        Value range of the images (1 for [0, 1]); sets ``C1 = (0.01 L)^2, C2 = (0.03 L)^2``.

    Returns
    -------
    Tensor, shape (B,)
        SSIM averaged over channels and valid window positions.

    References
    ----------
    .. [1] Wang, Z., Bovik, A. C., Sheikh, H. R., Simoncelli, E. P. (2004). Image quality
       assessment: from error visibility to structural similarity. IEEE TIP 13(4).
    """
    _check_pair(x, z)
    x, z = x.float(), z.float()
    size = min(window_size, x.shape[-2], x.shape[-1])
    size -= 1 - size % 2
    sigma = sigma * size / window_size
    c = x.shape[1]
    g = _gaussian_window(size, sigma, x.device, x.dtype)
    kx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, kx, groups=c), ky, groups=c)

    mx, mz = blur(x), blur(z)
    sxx = blur(x * x) - mx * mx
    szz = blur(z * z) - mz * mz
    sxz = blur(x * z) - mx * mz
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * mz + c1) * (2 * sxz + c2)) / ((mx * mx + mz * mz + c1) * (sxx + szz + c2))
    return s.flatten(1).mean(1)


def ssim_loss(x, z, **kwargs):
    """``1 - SSIM(x, z)`` averaged over the batch (Eq. 16); keywords go to :func:`ssim`."""
    return 1.0 - ssim(x, z, **kwargs).mean()


def _blur_down(x):
    # 5-tap binomial blur then decimation (Burt & Adelson's REDUCE)
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device, dtype=x.dtype) / 16
    c = x.shape[1]
    kx = k.view(1, 1, 1, 5).repeat(c, 1, 1, 1)
    ky = k.view(1, 1, 5, 1).repeat(c, 1, 1, 1)
    x = F.pad(x, (2, 2, 2, 2), mode="replicate")
    x = F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)
    return x[..., ::2, ::2]


def gradient_pyramid_loss(x, z, *, levels: int = 3):
    """Weight-free stand-in for the VGG16 perceptual loss (Eq. 17).

    Sum over ``levels`` scales of a Laplacian pyramid of the L1 distance between the band-pass
    images and between the finite-difference gradients (x and y) of ``x`` and ``z``.

    Why: Eq. 17 compares features of an ImageNet-trained VGG16, whose weights cannot be
    downloaded here (and torchvision does not work beside this torch); a randomly initialised
    VGG is no substitute. What the perceptual term contributes for EM is sensitivity to edges
    and texture at several scales, beyond what per-pixel L1 rewards (blur is cheap under
    L1). Gradients and Laplacian bands measure exactly that: a blurred prediction loses
    high-frequency energy and pays for it in every band (Bojanowski et al. 2018 use a
    Laplacian-pyramid L1 as a perceptual-like loss for the same reason).

    References
    ----------
    .. [1] Burt, P., Adelson, E. (1983). The Laplacian pyramid as a compact image code.
       IEEE Trans. Communications.
    .. [2] Bojanowski, P., Joulin, A., Lopez-Paz, D., Szlam, A. (2018). Optimizing the latent
       space of generative networks. ICML (Laplacian pyramid loss).
    """
    _check_pair(x, z)
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}.")
    x, z = x.float(), z.float()
    total = x.new_zeros(())
    for i in range(levels):
        d = x - z
        total = total + (d[..., :, 1:] - d[..., :, :-1]).abs().mean()
        total = total + (d[..., 1:, :] - d[..., :-1, :]).abs().mean()
        if min(x.shape[-2:]) < 4 or i == levels - 1:
            total = total + d.abs().mean()  # the low-pass residual
            break
        xd, zd = _blur_down(x), _blur_down(z)
        up = (x.shape[-2], x.shape[-1])
        bx = x - F.interpolate(xd, size=up, mode="bilinear", align_corners=False)
        bz = z - F.interpolate(zd, size=up, mode="bilinear", align_corners=False)
        total = total + (bx - bz).abs().mean()
        x, z = xd, zd
    return total


def pyramid_loss(
    flows: Sequence[torch.Tensor],
    reference,
    target,
    mask,
    *,
    weights: Sequence[float] = (1.0, 0.64, 0.32, 0.16, 0.08, 0.04),
    hole_weight: float = 5.0,
    ssim_weight: float = 1.0,
    perceptual_weight: float = 1.0,
):
    """Multi-level loss of the refined reference module (Eq. 13-14).

    For each flow ``f_k`` (in pixels of its own resolution, e.g. ``FlowOutput.flows``), the
    initial reference and the ground truth are resized (area) to its size, the reference is
    warped by ``f_k`` and compared with the ground truth:
    ``L_k = masked_l1(hole_weight) + ssim_weight * ssim_loss +
    perceptual_weight * gradient_pyramid_loss`` and ``L = sum_k w_k L_k``.

    Parameters
    ----------
    flows : sequence of Tensor, shapes (B, 2, h_k, w_k)
    reference : Tensor, shape (B, 1, H, W)
        The initial reference ``I_inter``.
    target : Tensor, shape (B, 1, H, W)
        The ground-truth section ``x``.
    mask : Tensor, shape (B, 1, H, W)
        1 on damaged pixels (resized by area: the fraction of damaged pixels per cell).
    weights : sequence of float, keyword
        ``w_k``, one per flow at least (paper: 1, 0.64, 0.32, 0.16, 0.08, 0.04).
    hole_weight : float, keyword
        ``lambda_c`` (paper: 5).
    """
    _check_pair(reference, target)
    if len(flows) == 0 or len(weights) < len(flows):
        raise ValueError(
            f"need one weight per flow: got {len(flows)} flows and {len(weights)} weights."
        )
    total = reference.new_zeros((), dtype=torch.float32)
    for f, wk in zip(flows, weights, strict=False):
        size = f.shape[-2:]
        if tuple(size) == tuple(reference.shape[-2:]):
            ref, x, m = reference, target, mask
        else:
            ref = F.interpolate(reference, size=size, mode="area")
            x = F.interpolate(target, size=size, mode="area")
            m = F.interpolate(mask.to(reference.dtype), size=size, mode="area")
        warped = warp(ref.float(), f.float())
        term = masked_l1(warped, x.float(), m, hole_weight=hole_weight)
        if ssim_weight:
            term = term + ssim_weight * ssim_loss(warped, x)
        if perceptual_weight:
            term = term + perceptual_weight * gradient_pyramid_loss(warped, x)
        total = total + wk * term
    return total


def _weighted_mean(t, weight):
    if weight is None:
        return t.mean()
    weight = weight.to(t.dtype)
    return (t * weight).sum() / weight.sum().clamp_min(1e-6)


def hinge_d_loss(real_logits, fake_logits, weight=None):
    """Hinge loss of the discriminator (Eq. 21):
    ``E[max(0, 1 - D(x))] + E[max(0, 1 + D(z))]``, means weighted by ``weight`` if given
    (the same weight map for both: a patch's share of the damaged region)."""
    real = _weighted_mean(F.relu(1.0 - real_logits.float()), weight)
    fake = _weighted_mean(F.relu(1.0 + fake_logits.float()), weight)
    return real + fake


def hinge_g_loss(fake_logits, weight=None):
    """Adversarial loss of the generator (Eq. 20): ``-E[D(z)]`` (weighted by ``weight``)."""
    return -_weighted_mean(fake_logits.float(), weight)


def discriminator_hinge_loss(real_outputs, fake_outputs):
    """Eq. 21 summed over the parts of :class:`~.discriminator.HybridDiscriminator`.

    ``real_outputs`` / ``fake_outputs`` are its outputs on the ground truth and on the
    (detached) inpainted image with the same mask; each part uses the fake's weight map.
    """
    if len(real_outputs) != len(fake_outputs):
        raise ValueError(
            f"real and fake outputs differ in parts: {len(real_outputs)} and {len(fake_outputs)}."
        )
    return sum(
        hinge_d_loss(r.logits, f.logits, f.weight)
        for r, f in zip(real_outputs, fake_outputs, strict=True)
    )


def generator_hinge_loss(fake_outputs):
    """Eq. 20 summed over the parts of :class:`~.discriminator.HybridDiscriminator`."""
    return sum(hinge_g_loss(f.logits, f.weight) for f in fake_outputs)
