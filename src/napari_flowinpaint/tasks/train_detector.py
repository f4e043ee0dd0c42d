"""Train the damage detector on simulated damage of real stacks (no napari needed).

Each sample is a section with its two neighbours from a training stack (isbi2012_train and
fibsem_medulla_ts1 z < 200 by default, never the validation sets), damaged by
:func:`~napari_flowinpaint.tasks.damage.simulate_damage` (every kind equally often, plus
clean sections), turned into the detector's input as at inference, cropped and augmented (90-degree
rotations, flips, swapped neighbours, gain and offset of the grey-level scale, the section
imaged a little apart from its neighbours; sometimes one or both neighbours are withheld).
The loss is binary cross-entropy plus soft Dice.

A run lives in one folder: ``checkpoint.pt`` (exact resume), ``losses.csv`` and
``detector.safetensors`` + ``.json`` (written at every checkpoint). Running the same
command again resumes.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..engine.nets.detector import DamageDetectorNet
from ..engine.weights import load_detector, save_detector
from .damage import DAMAGE_KINDS, continuing_structure, simulate_damage
from .detect import detector_input, stack_scale
from .train import _restore_state, _save_state, default_sources

__all__ = ["DetectorSampler", "train_detector", "detector_loss"]


class DetectorSampler:
    """Random (input, target) pairs for the detector; see the module docstring."""

    def __init__(self, stacks, *, crop: int = 192, rng=None, p_clean: float = 0.25,
                 p_one_sided: float = 0.1, p_alone: float = 0.05, kind_weights=None,
                 p_damaged_neighbour: float = 0.0, p_continuing: float = 0.0):
        self.stacks = []
        for arr, src in stacks:
            z0, z1 = max(0, src.z_range[0]), min(arr.shape[0], src.z_range[1])
            self.stacks.append((arr, src, z0, z1, stack_scale(arr[z0:z1])))
        w = np.array([s[1].weight for s in self.stacks], float)
        self.weights = w / w.sum()
        self.crop = int(crop)
        self.rng = np.random.default_rng(rng)
        self.p_clean, self.p_one_sided, self.p_alone = p_clean, p_one_sided, p_alone
        self.p_damaged_neighbour = p_damaged_neighbour
        self.p_continuing = p_continuing
        kw = dict(kind_weights or {})
        unknown = set(kw) - set(DAMAGE_KINDS)
        if unknown:
            raise ValueError(f"unknown damage kinds {sorted(unknown)} in kind_weights; "
                             f"expected some of {DAMAGE_KINDS}.")
        k = np.array([float(kw.get(name, 1.0)) for name in DAMAGE_KINDS])
        if (k < 0).any() or k.sum() <= 0:
            raise ValueError(f"kind_weights must be >= 0 and not all 0, got {kw}.")
        self.kind_p = k / k.sum()

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        arr, src, z0, z1, scale = self.stacks[rng.choice(len(self.stacks), p=self.weights)]
        dp, dn = (int(rng.choice(src.spacings)) for _ in range(2))
        z = int(rng.integers(z0 + dp, z1 - dn))
        prev, sec, nxt = (np.asarray(arr[k]) for k in (z - dp, z, z + dn))
        if rng.random() < self.p_clean:
            mask = np.zeros(sec.shape, bool)
        else:
            kind = DAMAGE_KINDS[int(rng.choice(len(DAMAGE_KINDS), p=self.kind_p))]
            sec, mask = simulate_damage(sec, kind, rng)
        # damage in a neighbour is not damage of this section: in a real stack the sections
        # around a damaged one are judged against it
        if rng.random() < self.p_damaged_neighbour:
            kind = DAMAGE_KINDS[int(rng.choice(len(DAMAGE_KINDS)))]
            if kind != "missing":  # a blank neighbour is skipped by the detection
                if rng.random() < 0.5:
                    prev = simulate_damage(prev, kind, rng)[0]
                else:
                    nxt = simulate_damage(nxt, kind, rng)[0]
        r = rng.random()
        if r < self.p_alone:
            prev = nxt = None
        elif r < self.p_alone + self.p_one_sided:
            if rng.random() < 0.5:
                prev = None
            else:
                nxt = None
        # a dark body in the section that a neighbour shows too is tissue: the target stays
        if rng.random() < self.p_continuing and (prev is not None or nxt is not None):
            if nxt is None or (prev is not None and rng.random() < 0.5):
                sec, prev = continuing_structure(sec, prev, rng)
            else:
                sec, nxt = continuing_structure(sec, nxt, rng)
        # intensity augmentation through the grey-level scale, so that the cues computed
        # from the grey levels stay consistent; the section may be imaged a little apart
        lo, hi = scale
        span = hi - lo
        lo = lo + rng.uniform(-0.1, 0.1) * span
        hi = lo + span * rng.uniform(0.8, 1.25)
        if rng.random() < 0.3:
            sec = lo + (sec.astype(np.float32) - lo) * rng.uniform(0.9, 1.1) \
                + rng.uniform(-0.05, 0.05) * span
        x = detector_input(prev, sec, nxt, (lo, hi))
        h, w = x.shape[1:]
        t = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
        c = min(self.crop, h, w)
        if t.any() and rng.random() < 0.7:  # a crop holding damage, anywhere in it
            ys, xs = np.nonzero(t)
            i = int(rng.integers(len(ys)))
            y0 = int(np.clip(ys[i] - rng.integers(c), 0, h - c))
            x0 = int(np.clip(xs[i] - rng.integers(c), 0, w - c))
        else:
            y0, x0 = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        x = x[:, y0:y0 + c, x0:x0 + c]
        t = t[y0:y0 + c, x0:x0 + c]
        k = int(rng.integers(4))
        x, t = np.rot90(x, k, axes=(1, 2)), np.rot90(t, k)
        if rng.random() < 0.5:
            x, t = x[:, :, ::-1], t[:, ::-1]
        if rng.random() < 0.5:  # swap the neighbours (and their cue channels)
            x = x[[2, 1, 0, 3, 4, 7, 6, 5]]
        return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(t, np.float32)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        items = [self.sample() for _ in range(n)]
        c = min(min(x.shape[1:]) for x, _ in items)
        xs = np.stack([x[:, :c, :c] for x, _ in items])
        ts = np.stack([t[:c, :c] for _, t in items])[:, None]
        return torch.from_numpy(xs), torch.from_numpy(ts)


def detector_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice over the batch."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return bce + dice


def train_detector(out_dir, *, sources=None, iterations: int = 3000, batch: int = 8,
                   crop: int = 192, width: int = 12, lr: float = 1e-3, seed: int = 0,
                   checkpoint_every: int = 250, init=None, p_clean: float = 0.25,
                   p_one_sided: float = 0.1, p_damaged_neighbour: float = 0.0,
                   p_continuing: float = 0.0, kind_weights: dict | None = None,
                   callback: Callable[[dict], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> Path:
    """Train (or resume) a damage detector; returns the path of its weights file.

    ``init`` (a weights file, or ``"bundled"``) starts from trained weights instead of a
    random initialisation (fine-tuning; ``width`` is then the file's). ``p_clean`` is the
    share of undamaged samples (what teaches the network to stay quiet on real sections);
    ``p_one_sided`` the share of samples with a neighbour on one side only (stack ends);
    ``p_damaged_neighbour`` the share whose neighbour is damaged (its damage is not the
    section's: the target stays the section's own); ``p_continuing`` the share in which a
    dark body is drawn in the section and a neighbour alike
    (:func:`~napari_flowinpaint.tasks.damage.continuing_structure`: tissue, not damage);
    ``kind_weights`` (e.g. ``{"crack": 2}``) draws some damage kinds more often.
    """
    import tifffile

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sources = sources or default_sources()
    stacks = [(tifffile.imread(s.path), s) for s in sources]
    for arr, s in stacks:
        if arr.ndim != 3:
            raise ValueError(f"{s.path}: expected a 3-D stack, got shape {arr.shape}.")
    torch.manual_seed(seed)
    if init is not None:
        net = load_detector(None if init == "bundled" else init)
        width = net.width
    else:
        net = DamageDetectorNet(width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=iterations,
                                                pct_start=0.05)
    sampler = DetectorSampler(stacks, crop=crop, rng=seed, p_clean=p_clean,
                              p_one_sided=p_one_sided, kind_weights=kind_weights,
                              p_damaged_neighbour=p_damaged_neighbour,
                              p_continuing=p_continuing)
    step, seconds = 0, 0.0
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)  # no pickle
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        sched.total_steps = iterations  # a resumed run may be asked for more steps
        sampler.rng.bit_generator.state = _restore_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        step, seconds = state["step"], state["seconds"]
    log = out / "losses.csv"
    new_log = not log.is_file() or step == 0
    fh = open(log, "w" if new_log else "a", newline="")
    writer = csv.writer(fh)
    if new_log:
        writer.writerow(["step", "loss", "seconds"])
    weights = out / "detector.safetensors"

    def save():
        tmp = ckpt.with_name("checkpoint.pt.part")
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "rng": _save_state(sampler.rng.bit_generator.state),
                    "torch_rng": torch.get_rng_state(), "step": step, "seconds": seconds}, tmp)
        os.replace(tmp, ckpt)
        save_detector(weights, net, meta={"training": {
            "data": [s.path.split("/")[-2] + (f" z {s.z_range[0]}:{s.z_range[1]}"
                                              if s.z_range != (0, 1 << 30) else "")
                     for s in sources],
            "iterations": step, "batch": batch, "crop_half_res": crop, "lr": lr, "seed": seed,
            "wall_time_s": round(seconds), "kinds": list(DAMAGE_KINDS),
            "init": str(init) if init else None, "p_clean": p_clean,
            "p_one_sided": p_one_sided, "p_damaged_neighbour": p_damaged_neighbour,
            "p_continuing": p_continuing,
            "kind_weights": dict(kind_weights or {}),
            "command": "napari-flowinpaint train-detector"}})
        fh.flush()

    net.train()
    try:
        while step < iterations:
            t0 = time.perf_counter()
            x, t = sampler.batch(batch)
            loss = detector_loss(net(x), t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            seconds += time.perf_counter() - t0
            writer.writerow([step, f"{loss.item():.5f}", f"{seconds:.1f}"])
            if callback is not None:
                callback({"step": step, "total": iterations, "loss": loss.item(),
                          "seconds": seconds})
            if step % checkpoint_every == 0 or step == iterations:
                save()
            if should_stop is not None and should_stop():
                save()
                break
    finally:
        fh.close()
    net.eval()
    return weights


# ---------------------------------------------------------------------------- command line
def add_arguments(parser) -> None:
    parser.add_argument("-o", "--out", required=True, type=Path, help="run folder")
    parser.add_argument("--data", nargs="+", default=None, metavar="STACK[:Z0:Z1[:S,S..]]",
                        help="training stacks (default: isbi2012_train and fibsem_medulla_ts1 "
                             "z<200 from ../shared/data)")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=192, help="crop side at half resolution")
    parser.add_argument("--width", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--init", default=None,
                        help="start from these detector weights ('bundled' for the shipped ones)")
    parser.add_argument("--p-clean", type=float, default=0.25,
                        help="share of undamaged samples (default 0.25)")
    parser.add_argument("--p-one-sided", type=float, default=0.1,
                        help="share of samples with a neighbour on one side only (default 0.1)")
    parser.add_argument("--p-damaged-neighbour", type=float, default=0.0,
                        help="share of samples with a damaged neighbour, to teach that its "
                             "damage is not the section's (default 0)")
    parser.add_argument("--p-continuing", type=float, default=0.0,
                        help="share of samples with a dark body drawn in the section and a "
                             "neighbour alike, to teach that it is tissue (default 0)")
    parser.add_argument("--kind-weights", nargs="+", default=[], metavar="KIND=W",
                        help="draw some damage kinds more often, e.g. crack=2 fold=2")


def run(args) -> int:
    from .train import parse_source

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    sources = [parse_source(t) for t in args.data] if args.data else None
    t_last = [0.0]

    def show(info):
        if info["step"] % 20 == 0 or info["step"] == info["total"]:
            print(f"[{info['step']}/{info['total']}] loss={info['loss']:.4f} "
                  f"({info['seconds']:.0f} s)", flush=True)
        t_last[0] = info["seconds"]

    weights = {}
    for item in args.kind_weights:
        kind, _, w = item.partition("=")
        try:
            weights[kind] = float(w)
        except ValueError:
            raise ValueError(f"--kind-weights takes KIND=WEIGHT pairs, got {item!r}.") from None
    path = train_detector(args.out, sources=sources, iterations=args.iterations,
                          batch=args.batch, crop=args.crop, width=args.width, lr=args.lr,
                          seed=args.seed, checkpoint_every=args.checkpoint_every,
                          init=args.init, p_clean=args.p_clean,
                          p_one_sided=args.p_one_sided,
                          p_damaged_neighbour=args.p_damaged_neighbour,
                          p_continuing=args.p_continuing, kind_weights=weights,
                          callback=show)
    print(f"detector weights: {path}")
    return 0
