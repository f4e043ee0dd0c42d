"""The learned networks of FlowInpaint (sections 3.2-3.4) as torch modules, and their losses.

* :class:`RefinedReferenceNet` (``refine_flow``): masked PWC-Net-like flow from the initial
  reference to the damaged section; warps the reference (Eq. 4-6).
* :class:`GuidedInpaintingNet` (``generator``): two-stream U-Net with feature aggregation
  layers and contextual attention; output composited with the known pixels (Eq. 7-12).
* :class:`HybridDiscriminator` (``discriminator``): global + local spectral-norm PatchGAN.
* :class:`DamageDetectorNet` (``detector``): small U-Net scoring damaged pixels of a section
  between its neighbours (used by ``tasks.detection``).
* ``losses``: masked L1, SSIM, pyramid loss, weight-free perceptual substitute, hinge losses.
* ``config``: named configurations ``"cpu"`` (default) and ``"gpu"``.

All networks take float tensors (B, 1, H, W) in [0, 1] and masks with 1 on DAMAGED pixels.
For CPU inference use ``net.to(memory_format=torch.channels_last)`` (about 2x faster
convolutions). ``torch.autocast("cpu", dtype=torch.bfloat16)`` works (flows stay float32
inside) but pays only on CPUs with native bfloat16 instructions (AVX512-BF16 or AMX, see
:func:`cpu_bf16_is_fast`): on an AVX2-only CPU it is about 5x SLOWER than float32.
"""

import torch

from .attention import ContextualAttention, contextual_attention
from .config import (
    CONFIG_NAMES,
    DiscriminatorConfig,
    FlowNetConfig,
    GeneratorConfig,
    LossConfig,
    NetsConfig,
    get_config,
)
from .correlation import Correlation, local_correlation
from .detector import DamageDetectorNet
from .discriminator import DiscriminatorOutput, HybridDiscriminator, PatchDiscriminator
from .generator import FeatureAggregation, GeneratorOutput, GuidedInpaintingNet
from .losses import (
    discriminator_hinge_loss,
    generator_hinge_loss,
    gradient_pyramid_loss,
    hinge_d_loss,
    hinge_g_loss,
    masked_l1,
    masked_l2,
    pyramid_loss,
    ssim,
    ssim_loss,
)
from .refine_flow import FlowOutput, RefinedReferenceNet

__all__ = [
    "CONFIG_NAMES",
    "ContextualAttention",
    "Correlation",
    "DamageDetectorNet",
    "DiscriminatorConfig",
    "DiscriminatorOutput",
    "FeatureAggregation",
    "FlowNetConfig",
    "FlowOutput",
    "GeneratorConfig",
    "GeneratorOutput",
    "GuidedInpaintingNet",
    "HybridDiscriminator",
    "LossConfig",
    "NetsConfig",
    "PatchDiscriminator",
    "RefinedReferenceNet",
    "build_networks",
    "contextual_attention",
    "count_parameters",
    "cpu_bf16_is_fast",
    "discriminator_hinge_loss",
    "generator_hinge_loss",
    "get_config",
    "gradient_pyramid_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "local_correlation",
    "masked_l1",
    "masked_l2",
    "pyramid_loss",
    "ssim",
    "ssim_loss",
]


def build_networks(config: NetsConfig | str = "cpu"):
    """The three networks of a configuration (a :class:`NetsConfig` or a name).

    Returns
    -------
    flow_net : RefinedReferenceNet
    generator : GuidedInpaintingNet
    discriminator : HybridDiscriminator
    """
    cfg = get_config(config) if isinstance(config, str) else config
    if not isinstance(cfg, NetsConfig):
        raise TypeError(f"config must be a NetsConfig or a name, got {type(cfg).__name__}.")
    return (
        RefinedReferenceNet(cfg.flow),
        GuidedInpaintingNet(cfg.generator),
        HybridDiscriminator(cfg.discriminator),
    )


def count_parameters(module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def cpu_bf16_is_fast() -> bool:
    """Whether this CPU has native bfloat16 matrix instructions (AVX512-BF16 or AMX tiles).

    Only then is ``torch.autocast("cpu", dtype=torch.bfloat16)`` faster than float32; without
    them oneDNN emulates bfloat16 and convolutions run several times slower.
    """
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, name, None)
        try:
            if check is not None and check():
                return True
        except Exception:  # private torch API: treat any failure as "no"
            continue
    return False
