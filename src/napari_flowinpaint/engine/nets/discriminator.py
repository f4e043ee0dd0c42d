"""Hybrid PatchGAN discriminator (FlowInpaint section 3.3): a global and a local part."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ._blocks import check_images
from .config import DiscriminatorConfig

__all__ = ["DiscriminatorOutput", "HybridDiscriminator", "PatchDiscriminator"]


class DiscriminatorOutput(NamedTuple):
    """One part's patch logits and the weight of each patch in the losses.

    ``weight`` is None for the global part (every patch counts equally); for the local part it
    is the fraction of damaged pixels in each patch's cell, so only patches touching the
    hole are scored (see :func:`~.losses.hinge_d_loss`).
    """

    logits: torch.Tensor
    weight: torch.Tensor | None


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017) with spectral normalisation (Miyato et al. 2018).

    Input (image, mask) channels; 4 x 4 convolutions of stride 2 with the given widths, then
    a stride-1 4 x 4 convolution to one logit per patch. Its output has stride
    ``2**len(channels)``.

    References
    ----------
    .. [1] Isola, P., Zhu, J.-Y., Zhou, T., Efros, A. A. (2017). Image-to-image translation
       with conditional adversarial networks. CVPR.
    .. [2] Miyato, T., Kataoka, T., Koyama, M., Yoshida, Y. (2018). Spectral normalization
       for generative adversarial networks. ICLR.
    """

    def __init__(self, channels=(32, 64, 128, 128), in_channels: int = 2):
        super().__init__()
        layers = []
        cin = in_channels
        for c in channels:
            layers += [spectral_norm(nn.Conv2d(cin, c, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            cin = c
        layers.append(spectral_norm(nn.Conv2d(cin, 1, 3, 1, 1)))
        self.body = nn.Sequential(*layers)
        self.stride = 2 ** len(channels)

    def forward(self, x):
        return self.body(x)


class HybridDiscriminator(nn.Module):
    """Global + local PatchGAN (paper: "a global context discriminator network and a local
    context discriminator network").

    Both parts see (image, mask) with ``image`` in [0, 1] and ``mask`` 1 on the damaged
    pixels. The global part is deeper (larger patches) and scores the whole image; the local
    part is shallower (finer patches) and its scores are weighted by the hole fraction of
    each patch cell, so it judges only the region around the damage. We keep the two logit
    maps separate (each with its own hinge loss, summed) rather than concatenating them into
    one probability as the paper describes: hinge losses need raw logits.
    """

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__()
        cfg = DiscriminatorConfig() if config is None else config
        if not isinstance(cfg, DiscriminatorConfig):
            raise TypeError(f"config must be a DiscriminatorConfig, got {type(cfg).__name__}.")
        self.config = cfg
        self.global_part = PatchDiscriminator(cfg.global_channels)
        self.local_part = PatchDiscriminator(cfg.local_channels)

    def forward(self, image, mask) -> list[DiscriminatorOutput]:
        """Logit maps of the global and the local part, in that order."""
        check_images(image=image, mask=mask)
        m = (mask > 0.5).to(image.dtype)
        x = torch.cat((image * 2.0 - 1.0, m), 1)
        g = self.global_part(x)
        loc = self.local_part(x)
        weight = F.adaptive_avg_pool2d(m, loc.shape[-2:]).float()
        return [DiscriminatorOutput(g, None), DiscriminatorOutput(loc, weight)]
