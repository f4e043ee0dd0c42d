"""Fine-tune the learned stages on your own stack (self-supervised), from the bundled weights.

``napari-flowinpaint finetune STACK -o WEIGHTS`` prints the PSNR of the held-out sections
before and after, the paired change over the same test repairs with its 95 % interval and the
verdict (better, no clear change or worse); running it again resumes. The work is
:func:`napari_flowinpaint.tasks.training.finetune`.
"""

from __future__ import annotations

from .common import ProgressBar, add_finetune_arguments
from .finetune_output import announce_output

__all__ = ["add_arguments", "run"]


def add_arguments(parser) -> None:
    parser.description = ("Fine-tune the learned stages on your own stack (self-supervised), "
                          "starting from the bundled weights.")
    add_finetune_arguments(parser, what="fine-tuned weights", iterations=300,
                           mask_help="mask stack of known damage: those sections are not "
                                     "trained on")


def run(args) -> int:
    from ..io import read_stack
    from ..training import finetune

    announce_output(args)
    stack = read_stack(args.stack)  # a big zarr stays on disk: read a crop at a time
    damaged = read_stack(args.mask, name="mask", sparse=True) if args.mask else None
    with ProgressBar("finetune", "iterations") as bar:
        res = finetune(stack, args.out, damaged=damaged, weights=args.weights,
                       iterations=args.iterations, spacing=args.spacing,
                       held_out=args.held_out, seed=args.seed, progress=bar,
                       overwrite=args.overwrite, protect=(args.stack, args.mask),
                       callback=lambda info: bar.show(" ".join(
                           f"{k}={v:.4f}" for k, v in info["losses"].items())
                           if "losses" in info else
                           "starting score reused" if info.get("reused") else
                           f"scoring the {'starting' if info['phase'] == 'before' else 'new'} "
                           f"weights {info['step']}/{info['total']}"))
    if res.weights is None:
        print(f"stopped at iteration {res.iterations}; run again to resume.")
        return 1
    print(f"held-out sections {res.held_out[0]}-{res.held_out[-1]}: PSNR in the hole "
          f"{res.psnr_before:.2f} dB before"
          + (" (reused from an earlier run)" if res.before_reused else "")
          + f", {res.psnr_after:.2f} dB after.")
    if res.change is not None:
        c = res.change
        sure = f"95 % interval {c.low:+.2f} to {c.high:+.2f} dB" if c.n > 1 else "no interval"
        print(f"change {c.mean:+.2f} dB ({sure}) over {c.n} paired test repairs: "
              f"{c.verdict()} (better only when the whole interval is above 0 and the gain "
              "at least 0.1 dB; worse when it is below 0).")
    print(f"weights written to {res.weights}")
    return 0
