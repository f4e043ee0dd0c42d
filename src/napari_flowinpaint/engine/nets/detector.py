"""Damage detector: a small U-Net scoring every pixel of a section as damaged or not.

It sees the section between its two neighbours (three channels, grey levels scaled to the
stack's range), so it can judge both what the section shows itself (blank, dark, blurred)
and how it disagrees with the sections around it. A dilated bottleneck at 1/8 resolution
gives it the context of folds and cloud-like sediment. Its receptive field is bounded (about
150 pixels across) and the input is padded by reflection, so that no pixel far from the
image border learns where the border is: a network that can tell the centre of a crop from
its edges fires on the centre of images larger than its training crops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import conv, pad_to_multiple

__all__ = ["DamageDetectorNet"]


class DamageDetectorNet(nn.Module):
    """Per-pixel damage logits for a section and its neighbours.

    Parameters
    ----------
    width : int
        Channels at full resolution; 2x, 4x and 4x that at 1/2, 1/4 and 1/8.

    Shape
    -----
    - input: (B, in_channels, H, W) float, by default the 8 channels of
      :func:`napari_flowinpaint.tasks.detection.detector_input` (previous, section, next and
      cues computed at full resolution, all at half resolution).
    - output: (B, 1, H, W) logits; sigmoid > 0.5 marks a damaged pixel.
    """

    PAD = 32  #: pixels of reflection padding on each side

    def __init__(self, width: int = 12, in_channels: int = 8):
        super().__init__()
        c = int(width)
        if c < 1 or in_channels < 1:
            raise ValueError(f"width and in_channels must be >= 1, got {width}, {in_channels}.")
        self.width = c
        self.in_channels = int(in_channels)
        self.stem = conv(self.in_channels, c)
        self.down1 = nn.Sequential(conv(c, 2 * c, stride=2), conv(2 * c, 2 * c))
        self.down2 = nn.Sequential(conv(2 * c, 4 * c, stride=2), conv(4 * c, 4 * c))
        self.down3 = nn.Sequential(conv(4 * c, 4 * c, stride=2), conv(4 * c, 4 * c, dilation=2),
                                   conv(4 * c, 4 * c, dilation=4))
        self.up2 = conv(8 * c, 4 * c)
        self.up1 = conv(6 * c, 2 * c)
        self.up0 = nn.Sequential(nn.Conv2d(3 * c, c, 1), nn.LeakyReLU(0.2, inplace=True))
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, H, W) as made by "
                             f"tasks.detection.detector_input, got {tuple(x.shape)}.")
        h, w = x.shape[-2:]
        p = self.PAD
        x = F.pad(x, (p, p, p, p), mode="reflect" if min(h, w) > p else "replicate")
        x, _ = pad_to_multiple(x, 8)
        s0 = self.stem(x)
        s1 = self.down1(s0)
        s2 = self.down2(s1)
        s3 = self.down3(s2)

        def up(a, b):
            return torch.cat([F.interpolate(a, size=b.shape[-2:], mode="bilinear",
                                            align_corners=False), b], 1)

        y = self.up2(up(s3, s2))
        y = self.up1(up(y, s1))
        # up0 is a 1x1 convolution, which commutes with bilinear upsampling: applying its
        # part for the coarse features before upsampling gives the same result as on the
        # concatenation, with less work and memory at the finest level.
        w0, b0 = self.up0[0].weight, self.up0[0].bias
        k = y.shape[1]
        y = F.interpolate(F.conv2d(y, w0[:, :k]), size=s0.shape[-2:], mode="bilinear",
                          align_corners=False) + F.conv2d(s0, w0[:, k:], b0)
        return self.head(self.up0[1](y))[..., p:p + h, p:p + w]
