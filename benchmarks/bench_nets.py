"""Forward times and parameter counts of the FlowInpaint networks (engine/nets).

Usage::

    .venv/bin/python benchmarks/bench_nets.py                    # "cpu" config, all sizes
    .venv/bin/python benchmarks/bench_nets.py --config gpu --sizes 256
    .venv/bin/python benchmarks/bench_nets.py --pipeline-only    # the speed targets only
    .venv/bin/python benchmarks/bench_nets.py --train-step       # + one training step timing

Prints, per network, the forward time at each size (1 image, 30 % mask) in float32 and in
bfloat16 autocast (both channels_last), then the whole pipeline (OpenCV DIS initial
reference + refined reference net + guided generator) on a 1024^2 slice with a 30 % mask
and on the ~2 % mask crop of a 2048^2 slice, which are the speed targets. Times are the
minimum over ``--repeat`` runs after one warm-up; the machine may be shared, so the load
average is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from napari_flowinpaint.engine.nets import (
    NetsConfig,
    build_networks,
    count_parameters,
    cpu_bf16_is_fast,
    get_config,
)
from napari_flowinpaint.engine.reference import initial_reference_unit
from napari_flowinpaint.engine.tiles import damage_box


def _blob_mask(size, fraction, seed=0):
    """A smooth irregular mask covering about ``fraction`` of a ``size`` x ``size`` image."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(
        rng.standard_normal((size, size)).astype(np.float32), (0, 0), size / 16
    )
    return noise > np.quantile(noise, 1 - fraction)


def _timeit(fn, repeat):
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _tensor(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]


class Pipeline:
    """DIS initial reference + refined reference + generator, as the engine will run it."""

    def __init__(self, flow_net, generator, *, bf16):
        self.flow_net, self.generator, self.bf16 = flow_net, generator, bf16

    def __call__(self, prev, damaged, nxt, mask):
        ref0 = initial_reference_unit(prev, nxt)
        t = [_tensor(a) for a in (ref0, prev, damaged, nxt)]
        m = _tensor(mask)
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=self.bf16):
            ref = self.flow_net(t[0], t[2], m).reference
            out = self.generator(ref, t[1], t[3], t[2], m).inpainted
        return out[0, 0].float().numpy()


def bench_nets(cfg, sizes, repeat, dtypes):
    flow_net, gen, disc = (
        n.eval().to(memory_format=torch.channels_last) for n in build_networks(cfg)
    )
    print(
        f"config {cfg.name!r}: params flow net {count_parameters(flow_net) / 1e6:.3f} M, "
        f"generator {count_parameters(gen) / 1e6:.3f} M, "
        f"discriminator {count_parameters(disc) / 1e6:.3f} M"
    )
    print(f"{'size':>6} {'dtype':>6} {'flow net':>9} {'generator':>9} {'discrim.':>9}")
    for s in sizes:
        x = torch.rand(1, 1, s, s)
        m = _tensor(_blob_mask(s, 0.3))
        for dt in dtypes:
            bf = dt == "bf16"
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf):
                tf = _timeit(lambda x=x, m=m: flow_net(x, x, m), repeat)
                tg = _timeit(lambda x=x, m=m: gen(x, x, x, x, m), repeat)
                td = _timeit(lambda x=x, m=m: disc(x, m), repeat)
            print(f"{s:>6} {dt:>6} {tf:>8.3f}s {tg:>8.3f}s {td:>8.3f}s", flush=True)


def bench_pipeline(cfg, repeat, dtypes):
    flow_net, gen, _ = (n.eval().to(memory_format=torch.channels_last) for n in build_networks(cfg))
    rng = np.random.default_rng(1)
    import cv2

    for size, frac, target in ((1024, 0.30, 2.0), (2048, 0.02, 0.5)):
        base = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 3)
        base = (base - base.min()) / (base.max() - base.min())
        # neighbours: the section moved by (+2, +1) and (-2, -1) pixels
        prev, nxt = (
            cv2.warpAffine(
                base,
                np.float32([[1, 0, s * 2.0], [0, 1, s * 1.0]]),
                (size, size),
                borderMode=cv2.BORDER_REFLECT,
            )
            for s in (1, -1)
        )
        if frac >= 0.1:
            mask = _blob_mask(size, frac)
        else:  # one compact blob, as a real tear or dust spot; the engine crops around it
            mask = np.zeros((size, size), bool)
            r = int(np.sqrt(frac * size * size / np.pi))
            cv2.circle(mask.view(np.uint8), (size // 2, size // 3), r, 1, -1)
        y0, y1, x0, x1 = damage_box(mask, 48)
        crop = (slice(y0, y1), slice(x0, x1))
        args = (
            prev[crop],
            np.where(mask, 1.0, base)[crop].astype(np.float32),
            nxt[crop],
            mask[crop],
        )
        for dt in dtypes:
            pipe = Pipeline(flow_net, gen, bf16=dt == "bf16")
            t = _timeit(lambda pipe=pipe, a=args: pipe(*a), repeat)
            t_dis = _timeit(lambda a=args: initial_reference_unit(a[0], a[2]), repeat)
            print(
                f"pipeline {size}^2, {frac:.0%} mask (crop {y1 - y0}x{x1 - x0}), {dt}: "
                f"{t:.3f} s (of which DIS reference {t_dis:.3f} s; target <= {target} s)",
                flush=True,
            )


def bench_train_step(cfg, batch=8, crop=128, repeat=3):
    from napari_flowinpaint.engine.nets import (
        discriminator_hinge_loss,
        generator_hinge_loss,
        masked_l1,
        pyramid_loss,
    )

    flow_net, gen, disc = (
        n.train().to(memory_format=torch.channels_last) for n in build_networks(cfg)
    )
    x = torch.rand(batch, 1, crop, crop)
    m = _tensor(_blob_mask(crop, 0.3)).expand(batch, -1, -1, -1).contiguous()
    opt_f = torch.optim.Adam(flow_net.parameters(), 1e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(gen.parameters(), 1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), 1e-4, betas=(0.5, 0.999))
    lc = cfg.loss

    def flow_step():
        out = flow_net(x, x, m)
        loss = pyramid_loss(
            out.flows, x, x, m, weights=lc.level_weights, hole_weight=lc.flow_hole_weight
        )
        opt_f.zero_grad()
        loss.backward()
        opt_f.step()

    def gan_step():
        out = gen(x, x, x, x, m)
        d_loss = discriminator_hinge_loss(disc(x, m), disc(out.inpainted.detach(), m))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = masked_l1(out.raw, x, m, hole_weight=lc.hole_weight) + lc.adv_weight * (
            generator_hinge_loss(disc(out.inpainted, m))
        )
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()

    print(
        f"training step, {batch} x {crop}^2, float32: flow net "
        f"{_timeit(flow_step, repeat):.3f} s, generator + discriminator "
        f"{_timeit(gan_step, repeat):.3f} s",
        flush=True,
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="cpu", help="configuration name (cpu, gpu)")
    p.add_argument(
        "--override",
        default=None,
        help='JSON merged into the config dict, e.g. \'{"flow": {"finest_level": 3}}\'',
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pipeline-only", action="store_true")
    p.add_argument("--train-step", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = get_config(args.config)
    if args.override:
        d = cfg.to_dict()
        for key, val in json.loads(args.override).items():
            d[key] = {**d[key], **val} if isinstance(val, dict) else val
        cfg = NetsConfig.from_dict(d)
    print(
        f"torch {torch.__version__}, {args.threads} threads, cpu capability "
        f"{torch.backends.cpu.get_cpu_capability()}, native bf16 {cpu_bf16_is_fast()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if not args.pipeline_only:
        bench_nets(cfg, args.sizes, args.repeat, args.dtypes)
    bench_pipeline(cfg, args.repeat, args.dtypes)
    if args.train_step:
        bench_train_step(cfg)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
