"""The hyper-parameters of an inpainting training run (:class:`TrainSettings`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ...engine.nets import NetsConfig, get_config

__all__ = ["TrainSettings"]


@dataclass
class TrainSettings:
    """Hyper-parameters of a training run (stored in the checkpoint and the weights)."""

    config: str = "cpu"
    crop: int = 128
    batch: int = 8
    flow_iters: int = 1500
    gan_iters: int = 6000
    lr_flow: float = 3e-4
    lr_gen: float = 2e-4
    lr_disc: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    gan_warmup: int = 500
    #: iterations over which the generator's adversarial weight rises linearly from 0 to
    #: lambda_adv after the warm-up (0: at once); the discriminator trains from the warm-up on
    adv_ramp: int = 0
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 10
    val_samples: int = 48
    use_fal: bool = True
    use_refined: bool = True
    use_gan: bool = True
    hole_weight: float | None = None
    adv_weight: float | None = None
    gen_perceptual_weight: float | None = 1.0
    gen_ssim_weight: float | None = 0.5
    recon: str | None = None
    residual: bool | None = None
    #: probability of each variation between labs in the training samples (pixel size,
    #: noise, blur, flicker; :class:`~napari_flowinpaint.tasks.training.TripletSampler`)
    p_lab: float = 0.0
    extra: dict = field(default_factory=dict)

    def nets_config(self) -> NetsConfig:
        cfg = get_config(self.config)
        gen = replace(cfg.generator, use_fal=self.use_fal)
        if self.residual is not None:
            gen = replace(gen, residual=self.residual)
        loss = cfg.loss
        upd = {}
        for name in ("hole_weight", "adv_weight", "gen_perceptual_weight", "gen_ssim_weight",
                     "recon"):
            v = getattr(self, name)
            if v is not None:
                upd[name] = v
        if not self.use_gan:
            upd["adv_weight"] = 0.0
        loss = replace(loss, **upd)
        return replace(cfg, generator=gen, loss=loss)
