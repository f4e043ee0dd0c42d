"""Weights between two weights files of one architecture: ``(1 - t) * A + t * B``, tensor by
tensor (the generator, the flow network and the discriminator alike).

A generator trained adversarially (a realism campaign's candidate, B) and the one it started
from (A) trade fidelity for texture; the weights between them give repairs between the two,
so one evaluation (``eval_realism.py --weights``) can pick the point that serves the
segmentation best while staying ahead of the classical baselines in PSNR.

    .venv/bin/python benchmarks/mix_weights.py weights/flowinpaint-cpu.safetensors \\
        runs/realism/weights.safetensors --t 0.3 0.5 --out runs/mix

writes ``runs/mix/mix-0.3.safetensors`` (and its ``.json``) for each ``t``.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch

from napari_flowinpaint.engine import load_weights, save_weights


def mix(a, b, t: float):
    """The networks of ``a`` moved ``t`` of the way to those of ``b`` (new modules)."""
    parts = ("flow", "generator", "discriminator")  # the losses they trained with may differ
    if any(getattr(a.config, p) != getattr(b.config, p) for p in parts):
        raise ValueError("the two weights files have different architectures; only weights "
                         "of one architecture can be mixed.")
    out = []
    for net_a, net_b in ((a.flow_net, b.flow_net), (a.generator, b.generator),
                         (a.discriminator, b.discriminator)):
        if net_a is None or net_b is None:
            out.append(None)
            continue
        sb = net_b.state_dict()
        state = {k: (torch.lerp(v.float(), sb[k].float(), t).to(v.dtype)
                     if v.is_floating_point() else v) for k, v in net_a.state_dict().items()}
        net_a.load_state_dict(state)
        out.append(net_a)
    return out


def sha256(path: Path) -> str:
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--t", type=float, nargs="+", required=True, help="0 = A, 1 = B")
    ap.add_argument("--out", type=Path, required=True, help="folder for mix-T.safetensors")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for t in args.t:
        if not 0.0 <= t <= 1.0:
            ap.error(f"--t must lie in [0, 1], got {t}.")
        a, b = load_weights(args.a), load_weights(args.b)
        f, g, d = mix(a, b, t)
        # A's training record stays (fine-tuning keeps the loss weights it names); B's is
        # kept beside it
        meta = {"training": a.meta.get("training", {}),
                "mixed": {"a": str(args.a), "a_sha256": sha256(args.a), "b": str(args.b),
                          "b_sha256": sha256(args.b), "t": t,
                          "b_training": b.meta.get("training", {})}}
        path = save_weights(args.out / f"mix-{t:g}", a.config, f, g, d, meta=meta)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
