"""Training of the learned stages (paper sections 3.2-3.4, 4.1-4.2), usable without napari.

Stage 1 trains the refined-reference network (Eq. 13-14), stage 2 the guided-inpainting
generator against the hybrid discriminator (Eq. 18-21), with the refined-reference network
frozen. Samples are aligned random crops of (previous, truth, next) triplets from vEM stacks,
damaged by the evaluation harness's mask generator, and prepared by the very function the
inference engine uses (:func:`~napari_flowinpaint.engine.pipeline.prepare_inputs`).

A run lives in one folder: ``checkpoint.pt`` (exact resume: networks, optimisers, step and
every random state), ``losses.csv``, ``losses.png``, ``validation.csv`` and, at the end,
``weights.safetensors`` + ``weights.json``. Running the same command again resumes.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..engine.nets import (
    HybridDiscriminator,
    NetsConfig,
    build_networks,
    discriminator_hinge_loss,
    generator_hinge_loss,
    get_config,
    gradient_pyramid_loss,
    masked_l1,
    masked_l2,
    pyramid_loss,
    ssim_loss,
)
from ..engine.pipeline import learned_stages, prepare_inputs
from ..engine.weights import load_weights, save_weights
from .masks import random_mask
from .metrics import _psnr_from_mse

__all__ = ["TrainSource", "TripletSampler", "TrainSettings", "train", "default_sources",
           "add_arguments", "run"]

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@dataclass(frozen=True)
class TrainSource:
    """A stack to draw training triplets from.

    Attributes
    ----------
    path : str
        TIFF or zarr stack (z, y, x).
    z_range : (int, int)
        Sections ``start <= z < stop`` that may be used (neighbours included).
    spacings : tuple of int
        Neighbour distances to draw from, on each side independently (an isotropic FIB-SEM
        stack mimics serial sections with distances of 3-5 slices).
    weight : float
        Relative sampling frequency.
    skip : tuple of int
        Sections never used in a triplet (e.g. those the user marked as damaged).
    """

    path: str
    z_range: tuple[int, int] = (0, 1 << 30)
    spacings: tuple[int, ...] = (1,)
    weight: float = 1.0
    skip: tuple[int, ...] = ()


def default_sources(root=None) -> list[TrainSource]:
    """The training data of the bundled weights: isbi2012_train (all 30 sections, spacing 1)
    and fibsem_medulla_ts1 z < 200 (spacings 2-6). isbi2012_test and fibsem z >= 200 are the
    validation sets and are never trained on."""
    root = Path(root) if root is not None else SHARED_DATA
    return [
        TrainSource(str(root / "isbi2012_train" / "raw.tif"), (0, 30), (1,), 1.0),
        TrainSource(str(root / "fibsem_medulla_ts1" / "raw.tif"), (0, 200), (2, 3, 4, 5, 6),
                    1.0),
    ]


class TripletSampler:
    """Random training samples: aligned crops of (prev, truth, next), a mask, augmentation.

    Parameters
    ----------
    stacks : sequence of (array (Z, H, W), TrainSource)
        Loaded stacks with their sampling rules.
    crop : int
        Side of the square crops.
    rng : numpy.random.Generator
    p_one_sided, p_whole : float
        Probability that a sample has only one neighbour (stack ends) / a wholly missing
        section.
    ratio_range : (float, float)
        Damaged fraction drawn uniformly from this range.
    """

    def __init__(self, stacks, *, crop: int = 128, rng=None, p_one_sided: float = 0.05,
                 p_whole: float = 0.03, ratio_range=(0.05, 0.6)):
        self.stacks = []
        for arr, src in stacks:
            z0, z1 = max(0, src.z_range[0]), min(arr.shape[0], src.z_range[1])
            smin = min(src.spacings)
            if z1 - z0 < 2 * smin + 1:
                raise ValueError(f"{src.path}: z range {z0}:{z1} too short for spacing {smin}.")
            if min(arr.shape[1:]) < crop:
                raise ValueError(f"{src.path}: sections {arr.shape[1:]} smaller than the "
                                 f"{crop} px crop.")
            self.stacks.append((arr, src, z0, z1, frozenset(src.skip)))
        w = np.array([st[1].weight for st in self.stacks], float)
        self.weights = w / w.sum()
        self.crop = int(crop)
        self.rng = np.random.default_rng(rng)
        self.p_one_sided = p_one_sided
        self.p_whole = p_whole
        self.ratio_range = ratio_range

    def sample(self) -> dict:
        rng = self.rng
        arr, src, z0, z1, skip = self.stacks[rng.choice(len(self.stacks), p=self.weights)]
        for _ in range(10_000):
            dp, dn = (int(rng.choice(src.spacings)) for _ in range(2))
            if z1 - z0 <= dp + dn:
                continue
            z = int(rng.integers(z0 + dp, z1 - dn))
            if not skip.intersection((z - dp, z, z + dn)):
                break
        else:
            raise ValueError(f"{src.path}: no usable triplet of sections in z {z0}:{z1} "
                             f"(spacings {src.spacings}, {len(skip)} sections skipped).")
        c = self.crop
        y = int(rng.integers(0, arr.shape[1] - c + 1))
        x = int(rng.integers(0, arr.shape[2] - c + 1))
        tri = np.stack([np.asarray(arr[k, y:y + c, x:x + c]) for k in (z - dp, z, z + dn)])
        tri = tri.astype(np.float32) / (255.0 if tri.dtype == np.uint8 else float(tri.max() or 1))
        alpha = dp / (dp + dn)
        # augmentation: 90-degree rotations, flips, swapping the neighbours, intensity changes
        tri = np.rot90(tri, int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            tri = tri[:, :, ::-1]
        if rng.random() < 0.5:
            tri = tri[::-1]
            alpha = 1.0 - alpha
        tri = np.clip(tri, 0, 1) ** np.float32(np.exp(rng.uniform(-0.3, 0.3)))
        tri = tri * np.float32(rng.uniform(0.7, 1.0)) + np.float32(rng.uniform(0.0, 0.2))
        # the damaged section itself may be imaged brighter/darker than its neighbours
        tri[1] = tri[1] * np.float32(rng.uniform(0.85, 1.15)) + np.float32(rng.uniform(-.08, .08))
        tri = np.ascontiguousarray(tri, dtype=np.float32)
        if rng.random() < self.p_whole:
            mask = np.ones((c, c), bool)
        else:
            mask = random_mask((c, c), rng.uniform(*self.ratio_range), rng)
        prev, truth, nxt = tri
        if rng.random() < self.p_one_sided:
            if rng.random() < 0.5:
                prev = None
            else:
                nxt = None
        damaged = np.where(mask, tri.max(), truth).astype(np.float32)
        u = prepare_inputs(prev, damaged, nxt, mask, alpha=alpha)
        return {"prev": u.prev, "next": u.next, "damaged": u.damaged,
                "mask": mask.astype(np.float32), "reference": u.reference,
                "truth": u.scale.to_unit(truth)}

    def batch(self, n: int) -> dict[str, torch.Tensor]:
        """``n`` samples stacked as (n, 1, crop, crop) float32 tensors."""
        items = [self.sample() for _ in range(n)]
        return {k: torch.from_numpy(np.stack([it[k] for it in items])[:, None].copy())
                for k in items[0]}


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


def _lr(base: float, step: int, total: int) -> float:
    """Constant for the first 60 % of a stage, then cosine decay to 5 %."""
    t = step / max(1, total)
    if t < 0.6:
        return base
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (t - 0.6) / 0.4)))


def _psnr(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> float:
    """PSNR over the masked pixels of a whole batch (unit range)."""
    mse = (((a - b) ** 2) * m).sum() / m.sum().clamp_min(1)
    return _psnr_from_mse(float(mse), 1.0)


def _plot(csv_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    keys = [k for k in rows[0] if k not in ("step", "stage", "seconds", "lr")]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    steps = np.array([int(r["step"]) for r in rows])
    for k in keys:
        v = np.array([float(r[k]) if r[k] not in ("", "nan") else np.nan for r in rows])
        if np.isfinite(v).any():
            ax.plot(steps, v, label=k, lw=1)
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path.with_name(png_path.name + ".part.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)


def _load_sources(sources: Sequence[TrainSource]):
    from .io import read_stack

    out = []
    for src in sources:
        arr = np.asarray(read_stack(src.path, name="training stack"))
        out.append((arr, src))
    return out


@dataclass
class TrainResult:
    """What :func:`train` left behind: ``weights`` is the final file, or the latest export
    (written at every stage-2 checkpoint) when ``stopped``, or None before stage 2."""

    out_dir: Path
    weights: Path | None
    step: int
    stopped: bool
    validation: dict


def train(out_dir, *, sources: Sequence[TrainSource] | None = None,
          settings: TrainSettings | None = None, init_weights=None, init_flow=None,
          stacks=None, callback: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None, max_seconds: float | None = None,
          meta: dict | None = None) -> TrainResult:
    """Train (or resume training) the refined-reference and guided-inpainting networks.

    Parameters
    ----------
    out_dir : str or Path
        Run folder; an existing ``checkpoint.pt`` there is resumed exactly.
    sources : sequence of TrainSource, keyword-only
        Default: :func:`default_sources` (isbi2012_train and fibsem_medulla_ts1 z < 200).
    settings : TrainSettings, keyword-only
    init_weights : str or Path or "bundled", keyword-only
        Start from these weights instead of random initialisation (fine-tuning).
    init_flow : str or Path, keyword-only
        Take only the refined-reference network from these weights (with ``flow_iters=0``,
        stage 2 starts at once: how the ablations share the main run's stage 1).
    stacks : sequence of (array, TrainSource), keyword-only
        Already-loaded stacks (overrides ``sources``).
    callback : callable, keyword-only
        Called every ``log_every`` iterations with a dict (step, total, stage, losses, ...).
    should_stop : callable, keyword-only
        Polled every iteration; when it returns True a checkpoint is written and training
        stops (it resumes later from there).
    max_seconds : float, keyword-only
        Stop (with a checkpoint) after this much wall time in this call.

    Returns
    -------
    TrainResult
    """
    s = settings or TrainSettings()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(s.seed)
    cfg = s.nets_config()
    if init_weights is not None:
        lw = load_weights(None if init_weights == "bundled" else init_weights)
        flow_net, gen = lw.flow_net, lw.generator
        disc = lw.discriminator
        if disc is None:
            disc = HybridDiscriminator(lw.config.discriminator)
        if s.residual and not gen.config.residual:
            gen.make_residual()  # keeps the learned layers, starts from the reference
        cfg = replace(lw.config, loss=cfg.loss, generator=gen.config)
    else:
        flow_net, gen, disc = build_networks(cfg)
    if init_flow is not None:  # a trained refined-reference network, fresh generator
        flow_net = load_weights(init_flow).flow_net
    for net in (flow_net, gen, disc):
        net.train()
        net.to(memory_format=torch.channels_last)
    total = s.flow_iters + s.gan_iters
    opt_f = torch.optim.Adam(flow_net.parameters(), lr=s.lr_flow, betas=s.betas)
    opt_g = torch.optim.Adam(gen.parameters(), lr=s.lr_gen, betas=s.betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=s.lr_disc, betas=s.betas)
    if stacks is None:
        stacks = _load_sources(sources if sources is not None else default_sources())
    sampler = TripletSampler(stacks, crop=s.crop, rng=np.random.default_rng(s.seed))
    val_sampler = TripletSampler(stacks, crop=s.crop, rng=np.random.default_rng(s.seed + 10_000))
    val = val_sampler.batch(s.val_samples)
    ckpt_path = out_dir / "checkpoint.pt"
    step = 0
    wall = 0.0
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        flow_net.load_state_dict(ck["flow"])
        gen.load_state_dict(ck["generator"])
        disc.load_state_dict(ck["discriminator"])
        opt_f.load_state_dict(ck["opt_flow"])
        opt_g.load_state_dict(ck["opt_gen"])
        opt_d.load_state_dict(ck["opt_disc"])
        sampler.rng.bit_generator.state = _restore_state(ck["rng"])
        torch.set_rng_state(ck["torch_rng"])
        step = int(ck["step"])
        wall = float(ck["wall"])
    loss_csv = out_dir / "losses.csv"
    val_csv = out_dir / "validation.csv"
    fields = ["step", "stage", "lr", "seconds", "flow_total", "g_l1", "g_ssim", "g_grad",
              "g_adv", "g_total", "d_loss"]
    if step == 0 or not loss_csv.exists():
        with open(loss_csv, "w", newline="") as fh:
            csv.writer(fh).writerow(fields)
        with open(val_csv, "w", newline="") as fh:
            csv.writer(fh).writerow(["step", "psnr_hole_initial", "psnr_hole_refined",
                                     "psnr_hole_output"])
    else:  # drop rows logged after the checkpoint we resume from
        _truncate_csv(loss_csv, step)
        _truncate_csv(val_csv, step)
    lc = cfg.loss
    reconstruction = masked_l2 if lc.recon == "l2" else masked_l1  # Eq. 18's first term
    t_start = time.perf_counter()
    stopped = False
    acc: dict[str, list[float]] = {}

    def checkpoint():
        ck = {"flow": flow_net.state_dict(), "generator": gen.state_dict(),
              "discriminator": disc.state_dict(), "opt_flow": opt_f.state_dict(),
              "opt_gen": opt_g.state_dict(), "opt_disc": opt_d.state_dict(),
              "rng": _save_state(sampler.rng.bit_generator.state),
              "torch_rng": torch.get_rng_state(), "step": step,
              "wall": wall + time.perf_counter() - t_start}
        tmp = ckpt_path.with_name("checkpoint.pt.part")
        torch.save(ck, tmp)
        os.replace(tmp, ckpt_path)
        _plot(loss_csv, out_dir / "losses.png")

    def validate() -> dict:
        flow_net.eval()
        gen.eval()
        with torch.no_grad():
            refined, out, _ = learned_stages(
                flow_net, gen, val["reference"], val["prev"], val["next"], val["damaged"],
                val["mask"], use_refined=s.use_refined)
        flow_net.train()
        gen.train()
        m = val["mask"]
        res = {"step": step,
               "psnr_hole_initial": _psnr(val["reference"].clamp(0, 1), val["truth"], m),
               "psnr_hole_refined": _psnr(refined.clamp(0, 1), val["truth"], m),
               "psnr_hole_output": _psnr(out.inpainted, val["truth"], m)}
        with open(val_csv, "a", newline="") as fh:
            csv.writer(fh).writerow([res[k] for k in res])
        return res

    def export() -> Path:
        wall_total = wall + time.perf_counter() - t_start
        info = {
            "training": {
                "data": [{"path": Path(src.path).parent.name + "/" + Path(src.path).name,
                          "z_range": list(src.z_range), "spacings": list(src.spacings)}
                         for _, src in stacks],
                "iterations": {"refined_reference": min(step, s.flow_iters)
                               if s.use_refined else 0,
                               "guided_inpainting": max(0, step - s.flow_iters)},
                "planned_iterations": total,
                "batch": s.batch, "crop": s.crop, "seed": s.seed,
                "wall_time_seconds": round(wall_total, 1),
                "settings": {k: v for k, v in vars(s).items() if k != "extra"},
                "init_weights": str(init_weights) if init_weights else None,
                "init_flow": str(init_flow) if init_flow else None,
                "validation_on_training_crops": last_val,
            },
            **(meta or {}),
        }
        return save_weights(out_dir / "weights", cfg, flow_net, gen, disc, meta=info)

    last_val = {}
    weights = None
    while step < total:
        stage = 1 if step < s.flow_iters else 2
        if stage == 1 and not s.use_refined:
            step = s.flow_iters
            continue
        b = sampler.batch(s.batch)
        b = {k: v.contiguous(memory_format=torch.channels_last) for k, v in b.items()}
        row = {}
        if stage == 1:
            lr = _lr(s.lr_flow, step, s.flow_iters)
            for g in opt_f.param_groups:
                g["lr"] = lr
            fo = flow_net(b["reference"], b["damaged"], b["mask"])
            loss = pyramid_loss(fo.flows, b["reference"], b["truth"], b["mask"],
                                weights=lc.level_weights, hole_weight=lc.flow_hole_weight,
                                ssim_weight=lc.ssim_weight,
                                perceptual_weight=lc.perceptual_weight)
            opt_f.zero_grad(set_to_none=True)
            loss.backward()
            opt_f.step()
            row["flow_total"] = loss.item()
        else:
            k = step - s.flow_iters
            lr = _lr(s.lr_gen, k, s.gan_iters)
            for g in opt_g.param_groups:
                g["lr"] = lr
            for g in opt_d.param_groups:
                g["lr"] = _lr(s.lr_disc, k, s.gan_iters)
            with torch.no_grad():
                flow_net.eval()
                refined, _, _ = learned_stages(flow_net, None, b["reference"], b["prev"],
                                               b["next"], b["damaged"], b["mask"],
                                               use_refined=s.use_refined)
                flow_net.train()
            out = gen(refined, b["prev"], b["next"], b["damaged"], b["mask"])
            x, m = b["truth"], b["mask"]
            use_adv = s.use_gan and lc.adv_weight > 0 and k >= s.gan_warmup
            if use_adv:
                real_o = disc(x, m)
                fake_o = disc(out.inpainted.detach(), m)
                d_loss = discriminator_hinge_loss(real_o, fake_o)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                row["d_loss"] = d_loss.item()
            rec = reconstruction(out.raw, x, m, hole_weight=lc.hole_weight)
            g_total = rec
            row["g_l1"] = rec.item()  # the column keeps its name for either distance
            if lc.gen_ssim_weight:
                t = ssim_loss(out.inpainted, x)
                g_total = g_total + lc.gen_ssim_weight * t
                row["g_ssim"] = t.item()
            if lc.gen_perceptual_weight:
                t = gradient_pyramid_loss(out.inpainted, x)
                g_total = g_total + lc.gen_perceptual_weight * t
                row["g_grad"] = t.item()
            if use_adv:
                t = generator_hinge_loss(disc(out.inpainted, m))
                g_total = g_total + lc.adv_weight * t
                row["g_adv"] = t.item()
            opt_g.zero_grad(set_to_none=True)
            g_total.backward()
            opt_g.step()
            row["g_total"] = g_total.item()
        step += 1
        for key, v in row.items():
            acc.setdefault(key, []).append(v)
        if step % s.log_every == 0 or step == total:
            elapsed = wall + time.perf_counter() - t_start
            means = {key: float(np.mean(v)) for key, v in acc.items()}
            acc = {}
            with open(loss_csv, "a", newline="") as fh:
                csv.writer(fh).writerow(
                    [step, stage, f"{lr:.3g}", f"{elapsed:.1f}"]
                    + [f"{means[f]:.5f}" if f in means else "" for f in fields[4:]])
            if callback is not None:
                callback({"step": step, "total": total, "stage": stage, "losses": means,
                          "seconds": elapsed, "validation": last_val})
        done = step == total
        if step % s.checkpoint_every == 0 or done:
            if stage == 2 or done:
                last_val = validate()
            checkpoint()
            if stage == 2 and not done:
                weights = export()  # usable weights at every stage-2 checkpoint
        over_time = max_seconds is not None and time.perf_counter() - t_start > max_seconds
        if not done and ((should_stop is not None and should_stop()) or over_time):
            checkpoint()
            if stage == 2:
                weights = export()
            stopped = True
            break
    if step >= total:
        if not last_val:
            last_val = validate()
        weights = export()
    return TrainResult(out_dir, weights, step, stopped, last_val)


def _save_state(state: dict) -> dict:
    """numpy bit-generator state with its big ints as strings (torch.load weights_only)."""
    return {k: (_save_state(v) if isinstance(v, dict) else str(v)) for k, v in state.items()}


def _restore_state(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        if isinstance(v, dict):
            out[k] = _restore_state(v)
        elif k == "bit_generator":
            out[k] = v
        else:
            out[k] = int(v)
    return out


def _truncate_csv(path: Path, step: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(keep)


# ---------------------------------------------------------------------------- command line
def add_arguments(parser) -> None:
    parser.description = (
        "Train the refined-reference and guided-inpainting networks (stage 1, then stage 2). "
        "Run again with the same OUT to resume from its checkpoint.")
    parser.add_argument("-o", "--out", required=True, type=Path, help="run folder")
    parser.add_argument("--data", nargs="+", default=None, metavar="STACK[:Z0:Z1[:S,S..]]",
                        help="training stacks with optional z range and neighbour spacings "
                             "(default: isbi2012_train and fibsem_medulla_ts1 z<200 from "
                             "../shared/data)")
    d = TrainSettings()
    for name in ("flow_iters", "gan_iters", "gan_warmup", "batch", "crop", "seed",
                 "checkpoint_every"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("lr_flow", "lr_gen", "lr_disc"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name))
    parser.add_argument("--config", default="cpu", help="network configuration: cpu or gpu")
    parser.add_argument("--no-fal", action="store_true", help="ablation: no FAL layers")
    parser.add_argument("--no-refined", action="store_true",
                        help="ablation: the generator sees the initial reference")
    parser.add_argument("--no-gan", action="store_true", help="ablation: no adversarial loss")
    parser.add_argument("--residual", action="store_true", default=None,
                        help="generator predicts a correction of the refined reference "
                             "(switches --init weights to it, starting from the reference)")
    parser.add_argument("--adv-weight", type=float, default=None,
                        help="lambda_adv of Eq. 18-19 (default: the configuration's, 0.1)")
    parser.add_argument("--recon", choices=("l1", "l2"), default=None,
                        help="distance of the reconstruction term of Eq. 18 (default: l1)")
    parser.add_argument("--gen-ssim-weight", type=float, default=d.gen_ssim_weight,
                        help="weight of the SSIM term on the generator's output")
    parser.add_argument("--gen-grad-weight", type=float, default=d.gen_perceptual_weight,
                        help="weight of the gradient-pyramid term (the perceptual "
                             "substitute) on the generator's output")
    parser.add_argument("--init", default=None, help="start from these weights ('bundled')")
    parser.add_argument("--init-flow", default=None,
                        help="take only the refined-reference network from these weights")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop with a checkpoint after this many minutes")


def parse_source(text: str) -> TrainSource:
    parts = text.split(":")
    path = parts[0]
    z = (int(parts[1] or 0), int(parts[2] or 1 << 30)) if len(parts) >= 3 else (0, 1 << 30)
    sp = tuple(int(v) for v in parts[3].split(",")) if len(parts) >= 4 else (1,)
    return TrainSource(path, z, sp)


def run(args) -> int:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    s = TrainSettings(config=args.config, flow_iters=args.flow_iters, gan_iters=args.gan_iters,
                      gan_warmup=args.gan_warmup, batch=args.batch, crop=args.crop, seed=args.seed,
                      checkpoint_every=args.checkpoint_every, lr_flow=args.lr_flow,
                      lr_gen=args.lr_gen, lr_disc=args.lr_disc, use_fal=not args.no_fal,
                      use_refined=not args.no_refined, use_gan=not args.no_gan,
                      adv_weight=args.adv_weight, residual=args.residual, recon=args.recon,
                      gen_ssim_weight=args.gen_ssim_weight,
                      gen_perceptual_weight=args.gen_grad_weight)
    sources = [parse_source(t) for t in args.data] if args.data else None

    def show(info):
        lv = info["losses"]
        txt = " ".join(f"{k}={v:.4f}" for k, v in lv.items())
        print(f"[{info['step']}/{info['total']}] stage {info['stage']} {txt} "
              f"({info['seconds']:.0f} s)", flush=True)

    res = train(args.out, sources=sources, settings=s, init_weights=args.init,
                init_flow=args.init_flow, callback=show,
                max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
    if res.weights:
        print(f"weights written to {res.weights}; validation {res.validation}")
    else:
        print(f"stopped at iteration {res.step}; run the same command again to resume.")
    return 0
