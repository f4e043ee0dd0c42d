"""The guided inpainting generator (FlowInpaint section 3.3, Eq. 7, 11, 12)."""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import ConvAct, FeaturePyramid, cat_as, check_images, conv, pad_to_multiple
from .attention import ContextualAttention
from .config import GeneratorConfig

__all__ = ["FeatureAggregation", "GeneratorOutput", "GuidedInpaintingNet"]


class GeneratorOutput(NamedTuple):
    """Output of :class:`GuidedInpaintingNet`.

    Attributes
    ----------
    inpainted : Tensor, shape (B, 1, H, W)
        The damaged section with its damaged pixels replaced by the prediction (Eq. 12);
        equal to the input outside the mask, bit for bit.
    raw : Tensor, shape (B, 1, H, W)
        The decoder's prediction everywhere, in [0, 1] (the valid-region L1 of Eq. 18 needs it).
    """

    inpainted: torch.Tensor
    raw: torch.Tensor


class FeatureAggregation(nn.Module):
    """Feature aggregation layer, FAL (Eq. 7).

    Four dilated 3 x 3 convolutions (rates 1, 2, 4, 8) read the same input, their outputs are
    concatenated and fused by one 1 x 1 convolution. Each branch has ``channels / 4`` outputs
    (as in AOT-GAN's blocks), so a FAL costs about as much as one plain 3 x 3 convolution of
    the same width, which keeps the "without FAL" ablation fair.

    References
    ----------
    .. [1] Chen, L.-C. et al. (2018). DeepLab: semantic image segmentation with deep
       convolutional nets, atrous convolution, and fully connected CRFs. TPAMI (ASPP).
    .. [2] Zeng, Y. et al. (2022). Aggregated contextual transformations for high-resolution
       image inpainting. TVCG (AOT-GAN).
    """

    def __init__(self, channels: int, dilations=(1, 2, 4, 8)):
        super().__init__()
        n = len(dilations)
        widths = [channels // n + (1 if i < channels % n else 0) for i in range(n)]
        self.branches = nn.ModuleList(
            conv(channels, c, dilation=d) for c, d in zip(widths, dilations, strict=True)
        )
        self.fuse = ConvAct(nn.Conv2d(channels, channels, 1), nn.LeakyReLU(0.2, True))

    def forward(self, x):
        return self.fuse(torch.cat([b(x) for b in self.branches], 1))


class _Encoder(FeaturePyramid):
    def __init__(self, cin, channels, *, use_fal, dilations):
        levels = []
        for i, c in enumerate(channels):
            first = conv(cin, c, stride=1 if i == 0 else 2)
            second = FeatureAggregation(c, dilations) if use_fal else conv(c, c)
            levels.append(nn.Sequential(first, second))
            cin = c
        super().__init__(levels)


def _up(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class GuidedInpaintingNet(nn.Module):
    """Two-stream U-Net with feature aggregation and contextual attention.

    * an optional space-to-depth stem (``config.stem``, 2 in the ``"cpu"`` configuration):
      the encoders start at half resolution on 2 x 2 pixel blocks and the output block ends
      with the inverse depth-to-space, a 4x saving on the most expensive layers;
    * guidance branch over (refined reference, previous, next section), with a FAL after the
      convolution(s) of every level (Eq. 7), or a plain 3 x 3 convolution if
      ``config.use_fal`` is False;
    * damaged branch over (damaged section, validity ``1 - mask``);
    * from the coarsest level up, a fusion layer ``h`` over (guidance features, damaged
      features, upsampled coarser attention feature), followed by contextual attention at the
      levels in ``config.attention_levels`` (Eq. 11);
    * an output block ``d`` at full resolution (Eq. 12), mapped to [0, 1] by ``(tanh + 1) / 2``
      and composited with the known pixels; with ``config.residual`` it is a correction of
      the refined reference instead, ``clip(reference + tanh(d), 0, 1)``.

    Parameters
    ----------
    config : GeneratorConfig, optional
        The ``"cpu"`` configuration by default.

    Notes
    -----
    Inputs are float tensors in [0, 1] (mapped to [-1, 1] inside); the damaged section's
    holes may hold anything (they are zeroed inside). ``mask`` is 1 on damaged pixels (the
    paper's ``m_hat``). Any size works (padding to a multiple of ``stem * 2**(L - 1)`` inside).
    At the attention levels, the feature mask is the max-pooled image mask: a feature
    position is missing when any damaged pixel lies in its cell.

    References
    ----------
    .. [1] Yu, J. et al. (2018). Generative image inpainting with contextual attention. CVPR.
    .. [2] Zeng, Y. et al. (2019). Learning pyramid-context encoder network for high-quality
       image inpainting. CVPR (attention at several scales).
    """

    def __init__(self, config: GeneratorConfig | None = None):
        super().__init__()
        cfg = GeneratorConfig() if config is None else config
        if not isinstance(cfg, GeneratorConfig):
            raise TypeError(f"config must be a GeneratorConfig, got {type(cfg).__name__}.")
        self.config = cfg
        ch = cfg.channels
        k2 = cfg.stem * cfg.stem
        self.guidance = _Encoder(3 * k2, ch, use_fal=cfg.use_fal, dilations=cfg.fal_dilations)
        self.damaged = _Encoder(2 * k2, ch, use_fal=False, dilations=cfg.fal_dilations)
        self.fusion = nn.ModuleDict()
        n = len(ch)
        for lv in range(n, 1, -1):
            cin = 2 * ch[lv - 1] + (ch[lv] if lv < n else 0)
            layers = [conv(cin, ch[lv - 1])]
            layers += [conv(ch[lv - 1], ch[lv - 1]) for _ in range(cfg.decoder_convs - 1)]
            self.fusion[str(lv)] = nn.Sequential(*layers)
        self.attention = ContextualAttention(cfg.attention_scale, cfg.attention_max_positions)
        layers = [conv(2 * ch[0] + ch[1], ch[0])]
        layers += [conv(ch[0], ch[0]) for _ in range(cfg.decoder_convs - 1)]
        layers.append(nn.Conv2d(ch[0], k2, 3, padding=1))
        if cfg.stem > 1:
            layers.append(nn.PixelShuffle(cfg.stem))
        self.out = nn.Sequential(*layers)

    @property
    def projection(self) -> nn.Conv2d:
        """The output block's last convolution (before the depth-to-space)."""
        return [m for m in self.out if isinstance(m, nn.Conv2d)][-1]

    def make_residual(self) -> None:
        """Switch to the residual output in place, keeping every learned layer.

        The last projection is zeroed, so right after the switch the generator returns the
        refined reference in the hole; training then learns the correction. Used to start a
        residual generator from weights trained with the direct output.
        """
        self.config = replace(self.config, residual=True)
        with torch.no_grad():
            self.projection.weight.zero_()
            if self.projection.bias is not None:
                self.projection.bias.zero_()

    def forward(self, reference, prev, next, damaged, mask) -> GeneratorOutput:
        """Inpaint ``damaged`` where ``mask`` is 1.

        Parameters
        ----------
        reference, prev, next, damaged, mask : Tensor, shape (B, 1, H, W)
            Refined reference, neighbouring sections, damaged section (all in [0, 1]) and
            the damage mask (1 = damaged).

        Returns
        -------
        GeneratorOutput
        """
        _, h, w = check_images(
            reference=reference, prev=prev, next=next, damaged=damaged, mask=mask
        )
        dtype = reference.dtype
        hole = mask > 0.5
        valid = (~hole).to(dtype)
        n = len(self.config.channels)
        stem = self.config.stem
        mult = stem * 2 ** (n - 1)
        g_in, _ = pad_to_multiple(torch.cat((reference, prev, next), 1).to(dtype) * 2.0 - 1.0, mult)
        d_in, _ = pad_to_multiple(
            torch.cat(((damaged.to(dtype) * 2.0 - 1.0) * valid, valid), 1), mult
        )
        hole_in, _ = pad_to_multiple(hole.to(dtype), mult, mode="constant", value=0.0)
        if stem > 1:
            g_in, d_in = F.pixel_unshuffle(g_in, stem), F.pixel_unshuffle(d_in, stem)
        eta1 = self.guidance(g_in)
        eta2 = self.damaged(d_in)
        psi = None
        for lv in range(n, 1, -1):
            parts = [eta1[lv - 1], eta2[lv - 1]]
            if psi is not None:
                parts.append(_up(psi, parts[0].shape[-2:]).to(parts[0].dtype))
            psi = self.fusion[str(lv)](cat_as(parts, parts[0]))
            if lv in self.config.attention_levels:
                m = F.max_pool2d(hole_in, stem * 2 ** (lv - 1))
                psi = self.attention(psi, m.to(psi.dtype))
        top = eta1[0]
        x = cat_as((top, eta2[0], _up(psi, top.shape[-2:]).to(top.dtype)), top)
        d = torch.tanh(self.out(x).float()[..., :h, :w])
        if self.config.residual:
            raw = (reference.float() + d).clamp(0.0, 1.0)
        else:
            raw = (d + 1.0) * 0.5
        raw = raw.to(dtype)
        inpainted = torch.where(hole, raw, damaged.to(dtype))
        return GeneratorOutput(inpainted, raw)
