"""Named configurations of the learned networks, serialisable to a JSON-able dict.

Two configurations ship:

* ``"cpu"`` (default, bundled weights): small widths chosen so that the whole pipeline
  (initial reference, refined reference, guided inpainting) repairs a 1024 x 1024 section in
  well under 2 s on two CPU cores with ``channels_last`` + bfloat16 autocast, and so that a
  training step on 8 crops of 128 x 128 takes a few hundred milliseconds.
* ``"gpu"``: widths close to the authors' public release (flow network ~7.6 M parameters,
  generator ~23 M parameters), K = L = 6 levels as in the paper (section 4.2).

A :class:`NetsConfig` is what a weights file's side-car config stores
(:meth:`NetsConfig.to_dict` / :meth:`NetsConfig.from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = [
    "CONFIG_NAMES",
    "DiscriminatorConfig",
    "FlowNetConfig",
    "GeneratorConfig",
    "LossConfig",
    "NetsConfig",
    "get_config",
]


@dataclass(frozen=True)
class FlowNetConfig:
    """:class:`~.refine_flow.RefinedReferenceNet` hyper-parameters.

    Attributes
    ----------
    channels : tuple of int
        Feature-pyramid widths; level ``k`` (1-based) has stride ``2**k``, so ``K =
        len(channels)`` levels and inputs are padded internally to a multiple of ``2**K``.
    finest_level : int
        Finest level at which a flow is estimated (PWC-Net stops at level 2, stride 4); the
        context network refines that flow and it is upsampled to full resolution.
    radius : int
        Search radius of the local cost volume (Eq. 4): ``(2 r + 1)**2`` displacements.
    convs_per_level : int
        Convolutions per pyramid level (the first one has stride 2).
    estimator_channels : tuple of int
        Hidden widths of every flow estimator ``E_k`` (Eq. 5).
    context_channels : tuple of int
        Widths of the context network ``R`` (Eq. 6); its 3 x 3 convolutions have the
        dilation rates ``context_dilations``.
    context_dilations : tuple of int
    """

    channels: tuple[int, ...] = (16, 32, 48, 64, 96)
    finest_level: int = 2
    radius: int = 3
    convs_per_level: int = 2
    estimator_channels: tuple[int, ...] = (64, 48, 32)
    context_channels: tuple[int, ...] = (48, 48, 48, 48, 32)
    context_dilations: tuple[int, ...] = (1, 2, 4, 8, 16)

    def __post_init__(self):
        k = len(self.channels)
        if k < 2:
            raise ValueError(f"FlowNetConfig.channels needs at least 2 levels, got {k}.")
        if not 1 <= self.finest_level <= k:
            raise ValueError(
                f"FlowNetConfig.finest_level must be in [1, {k}] (the pyramid levels), got "
                f"{self.finest_level}."
            )
        if self.radius < 0:
            raise ValueError(f"FlowNetConfig.radius must be >= 0, got {self.radius}.")
        if len(self.context_channels) != len(self.context_dilations):
            raise ValueError(
                "FlowNetConfig.context_channels and context_dilations must have the same "
                f"length, got {len(self.context_channels)} and {len(self.context_dilations)}."
            )


@dataclass(frozen=True)
class GeneratorConfig:
    """:class:`~.generator.GuidedInpaintingNet` hyper-parameters.

    Attributes
    ----------
    channels : tuple of int
        Encoder widths; level ``l`` (1-based) has stride ``stem * 2**(l - 1)``,
        ``L = len(channels)``.
    stem : int
        Space-to-depth factor applied to the inputs (``pixel_unshuffle``; the output block ends
        with the inverse): 1 = the encoders start at full resolution (paper), 2 = at half
        resolution on 2 x 2 blocks (4x fewer operations in the largest layers).
    use_fal : bool
        Feature aggregation layers (Eq. 7) in the guidance branch; ``False`` puts one plain
        3 x 3 convolution in their place (the paper's "Ours-FAL" ablation).
    fal_dilations : tuple of int
        Dilation rates of the FAL branches (paper: 1, 2, 4, 8).
    attention_levels : tuple of int
        1-based levels whose fused feature goes through contextual attention (Eq. 8-11).
        Only coarse levels (stride >= 4) are allowed. Empty = no attention.
    attention_scale : float
        Softmax temperature on the cosine similarities (Yu et al. 2018 use 10).
    attention_max_positions : int
        Largest feature grid (h * w) the attention works on directly; bigger maps are
        average-pooled to fit first (see :func:`~.attention.contextual_attention`).
    decoder_convs : int
        3 x 3 convolutions in each fusion layer ``h`` (Eq. 11) and in the output block ``d``
        before its last projection (Eq. 12).
    residual : bool
        Our addition: the output block predicts a correction of the refined reference
        (``raw = clip(reference + tanh(d), 0, 1)``) instead of the pixels themselves, so a
        good reference passes through unchanged and the network learns only what it gets
        wrong. ``False`` (the paper's direct output) is what weights without the key mean.
    """

    channels: tuple[int, ...] = (16, 32, 64, 96, 128)
    stem: int = 2
    use_fal: bool = True
    fal_dilations: tuple[int, ...] = (1, 2, 4, 8)
    attention_levels: tuple[int, ...] = (3, 4, 5)
    attention_scale: float = 10.0
    attention_max_positions: int = 1024
    decoder_convs: int = 1
    residual: bool = False

    def __post_init__(self):
        n = len(self.channels)
        if n < 2:
            raise ValueError(f"GeneratorConfig.channels needs at least 2 levels, got {n}.")
        if self.stem not in (1, 2, 4):
            raise ValueError(f"GeneratorConfig.stem must be 1, 2 or 4, got {self.stem}.")
        bad = [
            lv
            for lv in self.attention_levels
            if not (1 <= lv <= n and self.stem * 2 ** (lv - 1) >= 4)
        ]
        if bad:
            raise ValueError(
                f"GeneratorConfig.attention_levels must be levels in [1, {n}] of stride >= 4 "
                f"(stride = stem * 2**(level - 1)), got {bad}."
            )
        if self.decoder_convs < 1:
            raise ValueError(
                f"GeneratorConfig.decoder_convs must be >= 1, got {self.decoder_convs}."
            )


@dataclass(frozen=True)
class DiscriminatorConfig:
    """:class:`~.discriminator.HybridDiscriminator` hyper-parameters: widths of the global
    PatchGAN (whole image) and of the shallower local PatchGAN (scored on the hole only)."""

    global_channels: tuple[int, ...] = (32, 64, 128, 128)
    local_channels: tuple[int, ...] = (32, 64, 128)


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (paper section 4.2 unless noted).

    Attributes
    ----------
    level_weights : tuple of float
        ``w_k`` of the pyramid loss (Eq. 13), full resolution first.
    flow_hole_weight : float
        ``lambda_c`` of Eq. 14 (weight of the damaged region).
    hole_weight : float
        ``lambda_r`` of Eq. 18 (weight of the damaged region in the generator loss).
    adv_weight : float
        ``lambda_adv`` of Eq. 18-19.
    ssim_weight, perceptual_weight : float
        Weights of the SSIM term (Eq. 16) and of the weight-free perceptual substitute
        (:func:`~.losses.gradient_pyramid_loss`, standing in for VGG16's Eq. 17) in Eq. 14.
        Our addition: the paper uses them (weight 1) in the flow stage only;
        ``gen_ssim_weight`` / ``gen_perceptual_weight`` optionally add them to Eq. 18.
    recon : {"l1", "l2"}
        Distance of Eq. 18's reconstruction term: the paper's L1, or our squared-error
        option (:func:`~.losses.masked_l2`), whose minimiser is the conditional mean.
    """

    level_weights: tuple[float, ...] = (1.0, 0.64, 0.32, 0.16, 0.08, 0.04)
    flow_hole_weight: float = 5.0
    hole_weight: float = 6.0
    adv_weight: float = 0.1
    ssim_weight: float = 1.0
    perceptual_weight: float = 1.0
    gen_ssim_weight: float = 0.0
    gen_perceptual_weight: float = 0.0
    recon: str = "l1"

    def __post_init__(self):
        if self.recon not in ("l1", "l2"):
            raise ValueError(f"LossConfig.recon must be 'l1' or 'l2', got {self.recon!r}.")


@dataclass(frozen=True)
class NetsConfig:
    """Everything needed to rebuild the networks (and the losses they were trained with)."""

    name: str = "cpu"
    flow: FlowNetConfig = field(default_factory=FlowNetConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict:
        """A JSON-able dict (tuples become lists)."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> NetsConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise, missing keys take the defaults."""
        if not isinstance(d, dict):
            raise TypeError(f"expected a dict (from NetsConfig.to_dict), got {type(d).__name__}.")
        parts = {
            "flow": FlowNetConfig,
            "generator": GeneratorConfig,
            "discriminator": DiscriminatorConfig,
            "loss": LossConfig,
        }
        unknown = set(d) - set(parts) - {"name"}
        if unknown:
            raise ValueError(
                f"unknown NetsConfig keys {sorted(unknown)}; expected {sorted(parts)}."
            )
        kwargs = {"name": str(d.get("name", "custom"))}
        for key, klass in parts.items():
            if key in d:
                kwargs[key] = _build(klass, d[key])
        return cls(**kwargs)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _build(klass, d):
    if not isinstance(d, dict):
        raise TypeError(f"{klass.__name__} expects a dict, got {type(d).__name__}.")
    names = {f.name for f in dataclasses.fields(klass)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(
            f"unknown {klass.__name__} keys {sorted(unknown)}; expected {sorted(names)}."
        )
    return klass(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


_CONFIGS = {
    "cpu": NetsConfig(name="cpu"),
    "gpu": NetsConfig(
        name="gpu",
        flow=FlowNetConfig(
            channels=(16, 32, 64, 96, 128, 196),
            finest_level=2,
            radius=4,
            convs_per_level=3,
            estimator_channels=(208, 176, 128, 96, 64),
            context_channels=(128, 128, 128, 96, 64, 32),
            context_dilations=(1, 2, 4, 8, 16, 1),
        ),
        generator=GeneratorConfig(
            channels=(32, 64, 128, 256, 352, 384),
            stem=1,
            attention_levels=(3, 4, 5, 6),
            attention_max_positions=4096,
            decoder_convs=2,
        ),
        discriminator=DiscriminatorConfig(
            global_channels=(64, 128, 256, 512), local_channels=(64, 128, 256)
        ),
    ),
}

#: Names accepted by :func:`get_config`.
CONFIG_NAMES = tuple(_CONFIGS)


def get_config(name: str = "cpu") -> NetsConfig:
    """The named configuration: ``"cpu"`` (default, small and fast) or ``"gpu"`` (paper-size)."""
    if name not in _CONFIGS:
        raise ValueError(f"unknown network configuration {name!r}; expected one of {CONFIG_NAMES}.")
    return _CONFIGS[name]
