"""The refined reference module (FlowInpaint section 3.2): a masked PWC-Net-like network."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..flow import warp
from ._blocks import FeaturePyramid, cat_as, check_images, conv, pad_to_multiple
from .config import FlowNetConfig
from .correlation import Correlation

__all__ = ["FlowOutput", "RefinedReferenceNet"]

_SLOPE = 0.1  # PWC-Net's leaky ReLU slope


class FlowOutput(NamedTuple):
    """Output of :class:`RefinedReferenceNet`.

    Attributes
    ----------
    reference : Tensor, shape (B, 1, H, W)
        The refined reference ``W(I_inter, f)`` (Eq. 6).
    flows : list of Tensor
        ``flows[0]``: the final flow (B, 2, H, W) at full resolution; then the flow of every
        estimated pyramid level from the finest (context-refined) to the coarsest, each of
        shape (B, 2, ceil(H / s), ceil(W / s)) for its stride ``s``, in pixels *of that level*.
        This is what :func:`~.losses.pyramid_loss` (Eq. 13) takes.
    """

    reference: torch.Tensor
    flows: list[torch.Tensor]


def _small(layer, scale=0.01):
    # flow heads start near zero: an untrained network returns about the initial reference
    with torch.no_grad():
        layer.weight.mul_(scale)
        layer.bias.zero_()
    return layer


class _Pyramid(FeaturePyramid):
    def __init__(self, cin, channels, convs_per_level):
        levels = []
        for c in channels:
            layers = [conv(cin, c, stride=2, slope=_SLOPE)]
            layers += [conv(c, c, slope=_SLOPE) for _ in range(convs_per_level - 1)]
            levels.append(nn.Sequential(*layers))
            cin = c
        super().__init__(levels)


class _Estimator(nn.Module):
    """E_k (Eq. 5): (correlation, damaged features, upsampled flow, mask) -> flow update."""

    def __init__(self, cin, hidden):
        super().__init__()
        layers = []
        for c in hidden:
            layers.append(conv(cin, c, slope=_SLOPE))
            cin = c
        self.body = nn.Sequential(*layers)
        self.head = _small(nn.Conv2d(cin, 2, 3, padding=1))
        self.out_channels = cin

    def forward(self, x):
        feat = self.body(x)
        return self.head(feat), feat


class _Context(nn.Module):
    """R (Eq. 6, Fig. 3B): dilated 3 x 3 convolutions refining the finest flow."""

    def __init__(self, cin, channels, dilations):
        super().__init__()
        layers = []
        for c, d in zip(channels, dilations, strict=True):
            layers.append(conv(cin, c, dilation=d, slope=_SLOPE))
            cin = c
        layers.append(_small(nn.Conv2d(cin, 2, 3, padding=1)))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class RefinedReferenceNet(nn.Module):
    """Flow from the initial reference to the damaged section, learned around a mask.

    A shared-weight feature pyramid encodes (image, validity) for the initial reference and
    for the damaged section. From the coarsest level to ``finest_level``, the reference
    features are warped by the upsampled coarser flow, correlated with the damaged features
    (Eq. 4), and an estimator sees (correlation, damaged features, upsampled flow, mask) to
    update the flow (Eq. 5). A context network of dilated convolutions (rates 1, 2, 4, 8, 16)
    refines the finest flow, which is upsampled to full resolution and warps the initial
    reference into the refined reference (Eq. 6).

    Parameters
    ----------
    config : FlowNetConfig, optional
        Widths and levels; the ``"cpu"`` configuration by default.

    Notes
    -----
    * Inputs are float tensors in [0, 1] (the engine's unit range); they are mapped to
      [-1, 1] internally and the damaged pixels are zeroed, so the fill value of the holes
      does not matter.
    * ``mask`` is 1 (or True) on DAMAGED pixels, the package's convention; the paper's ``m``
      is 1 on valid pixels, i.e. ``1 - mask``.
    * Any size works: inputs are padded (bottom/right, edge values) to a multiple of
      ``2**K`` and the outputs cropped back.
    * Each level's flow is a residual update of the upsampled coarser one (PWC-Net's
      estimators predict the whole flow; the residual form trains faster from scratch), and
      the flow heads start with weights scaled by 0.01, so an untrained network returns
      nearly the initial reference.
    * Flows are accumulated, upsampled and applied in float32 even under bfloat16 autocast.

    References
    ----------
    .. [1] Sun, D., Yang, X., Liu, M.-Y., Kautz, J. (2018). PWC-Net. CVPR.
    """

    def __init__(self, config: FlowNetConfig | None = None):
        super().__init__()
        cfg = FlowNetConfig() if config is None else config
        if not isinstance(cfg, FlowNetConfig):
            raise TypeError(f"config must be a FlowNetConfig, got {type(cfg).__name__}.")
        self.config = cfg
        self.pyramid = _Pyramid(2, cfg.channels, cfg.convs_per_level)
        self.correlation = Correlation(cfg.radius)
        k = len(cfg.channels)
        self._levels = list(range(k, cfg.finest_level - 1, -1))  # coarse -> fine, 1-based
        self.estimators = nn.ModuleDict()
        for lv in self._levels:
            cin = self.correlation.out_channels + cfg.channels[lv - 1] + 2 + 1
            self.estimators[str(lv)] = _Estimator(cin, cfg.estimator_channels)
        est_out = self.estimators[str(cfg.finest_level)].out_channels
        self.context = _Context(est_out + 2, cfg.context_channels, cfg.context_dilations)

    @property
    def strides(self) -> list[int]:
        """Stride of each entry of :attr:`FlowOutput.flows` (1 for the full-resolution flow)."""
        return [1] + [2**lv for lv in reversed(self._levels)]

    def forward(self, reference, damaged, mask) -> FlowOutput:
        """Estimate the flow and warp the reference.

        Parameters
        ----------
        reference : Tensor, shape (B, 1, H, W)
            The initial reference ``I_inter`` in [0, 1].
        damaged : Tensor, shape (B, 1, H, W)
            The damaged section in [0, 1] (any values in the holes).
        mask : Tensor, shape (B, 1, H, W)
            1 (or True) on damaged pixels, 0 elsewhere (values > 0.5 count as damaged).

        Returns
        -------
        FlowOutput
        """
        _, h, w = check_images(reference=reference, damaged=damaged, mask=mask)
        dtype = reference.dtype
        valid = (mask <= 0.5).to(dtype)
        mult = 2 ** len(self.config.channels)
        ref_in, _ = pad_to_multiple(reference * 2.0 - 1.0, mult)
        dam_in, _ = pad_to_multiple((damaged.to(dtype) * 2.0 - 1.0) * valid, mult)
        val_in, _ = pad_to_multiple(valid, mult, mode="constant", value=1.0)
        x = torch.cat(
            (torch.cat((ref_in, torch.ones_like(val_in)), 1), torch.cat((dam_in, val_in), 1)), 0
        )
        feats = self.pyramid(x)
        b = reference.shape[0]
        flow = None
        level_flows = []
        for lv in self._levels:
            f_ref, f_dam = feats[lv - 1][:b], feats[lv - 1][b:]
            size = f_dam.shape[-2:]
            # flows are kept and applied in float32 even under bfloat16 autocast: a bf16
            # sampling grid is off by up to half a pixel at 256 px
            if flow is None:
                up = torch.zeros((b, 2, *size), device=x.device)
                corr = self.correlation(f_dam, f_ref)
            else:
                up = 2.0 * F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
                corr = self.correlation(f_dam.float(), f_ref.float(), up)
            m_k = F.adaptive_avg_pool2d(1.0 - val_in, size)
            ct = f_dam.dtype
            est_in = cat_as((corr.to(ct), f_dam, up.to(ct), m_k.to(ct)), f_dam)
            delta, est_feat = self.estimators[str(lv)](est_in)
            flow = up + delta.float()
            level_flows.append(flow)
        ctx_in = cat_as((est_feat, flow.to(est_feat.dtype)), est_feat)
        flow = flow + self.context(ctx_in).float()
        level_flows[-1] = flow
        stride = 2**self.config.finest_level
        full = (
            stride
            * F.interpolate(flow, scale_factor=stride, mode="bilinear", align_corners=False)[
                ..., :h, :w
            ]
        )
        flows = [full.float()]
        for lv, f in zip(reversed(self._levels), reversed(level_flows), strict=True):
            s = 2**lv
            flows.append(f[..., : -(-h // s), : -(-w // s)].float())
        refined = warp(reference, full.to(reference.dtype))
        return FlowOutput(refined, flows)
