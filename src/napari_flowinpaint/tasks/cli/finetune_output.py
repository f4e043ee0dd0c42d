"""What ``finetune`` and ``finetune-detector`` write, checked and said before any work."""

from __future__ import annotations

__all__ = ["announce_output"]


def announce_output(args) -> None:
    """Check ``-o`` (never the stack or the mask, not an existing file without
    ``--overwrite``) and, when it has no ``.safetensors`` suffix, say which files the
    weights will be written to.

    Raises
    ------
    ValueError, FileExistsError, FileNotFoundError
        As :func:`napari_flowinpaint.tasks.training.common.weights_output`.
    """
    from ..training.common import weights_output

    out, _ = weights_output(args.out, overwrite=args.overwrite,
                            protect=(args.stack, args.mask), what="weights file (-o)")
    if out != args.out:
        print(f"-o {args.out} has no .safetensors suffix: the weights will be written to "
              f"{out} (and {out.with_suffix('.json').name} beside it).")
