"""Repair the damaged sections of an image stack given a mask stack (nonzero = damaged).

``napari-flowinpaint repair INPUT --mask MASK -o OUTPUT`` reads a TIFF or zarr stack and a mask
stack of the same shape, repairs every section whose mask marks damage from its nearest
usable neighbours (read from the original stack; damaged neighbours are skipped) and writes
the result atomically: OUTPUT is either complete or not there at all, even after Ctrl-C.
Pixels outside the mask, and sections with an empty mask, are copied unchanged.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ..engine import FLOW_METHODS, STAGES, SUPPORTED_DTYPES, FlowInpainter
from .io import StackWriter, read_stack, read_voxel_size
from .stack import damaged_z, find_neighbours, iter_repair_stack

__all__ = ["add_arguments", "run", "parse_slices", "format_slices"]


def parse_slices(text: str, n: int | None = None) -> list[int]:
    """Parse a slice list such as ``"3,7-9"`` into sorted unique indices ``[3, 7, 8, 9]``.

    Ranges include both ends. With ``n`` given, every index must lie in ``[0, n)``.

    Raises
    ------
    ValueError
        For malformed text or an index outside the stack.
    """
    out: set[int] = set()
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        lo = int(match[1]) if match else 0
        hi = int(match[2]) if match and match[2] else lo
        if match is None or hi < lo:
            raise ValueError(
                f"cannot read the slice list {text!r} at {part!r}; expected indices >= 0 and "
                "inclusive ranges separated by commas, e.g. '3,7-9'."
            )
        out.update(range(lo, hi + 1))
    if not out:
        raise ValueError(f"the slice list {text!r} names no slice; e.g. '3,7-9'.")
    if n is not None:
        bad = sorted(z for z in out if not 0 <= z < n)
        if bad:
            raise ValueError(
                f"slice(s) {format_slices(bad)} are outside the stack, which has {n} slices "
                f"(0 to {n - 1})."
            )
    return sorted(out)


def format_slices(zs) -> str:
    """Compact text for a list of indices: ``[3, 7, 8, 9]`` -> ``"3,7-9"``."""
    zs = sorted(int(z) for z in zs)
    parts = []
    i = 0
    while i < len(zs):
        j = i
        while j + 1 < len(zs) and zs[j + 1] == zs[j] + 1:
            j += 1
        parts.append(str(zs[i]) if i == j else f"{zs[i]}-{zs[j]}")
        i = j + 1
    return ",".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="image stack, .tif/.tiff or .zarr, axes (z, y, x); never modified")
    parser.add_argument("--mask", "-m", required=True, metavar="MASK",
                        help="mask stack of the same shape (.tif/.tiff/.zarr); nonzero marks "
                             "damaged pixels")
    parser.add_argument("--output", "-o", required=True, metavar="OUTPUT",
                        help="repaired stack to write (.tif/.tiff/.zarr); must not be INPUT")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUTPUT if it exists (the old one is removed only after "
                             "the new one is complete)")
    parser.add_argument("--slices", metavar="LIST",
                        help="repair only these slices, e.g. '3,7-9' (default: every slice "
                             "whose mask marks damage)")
    parser.add_argument("--max-distance", type=int, default=3, metavar="N",
                        help="look up to N slices away for an undamaged neighbour (default 3)")
    parser.add_argument("--device", default="auto",
                        help="'auto' (GPU if available, else CPU), 'cpu' or 'cuda[:N]' "
                             "(default auto)")
    parser.add_argument("--weights", default=None, type=Path,
                        help="weights of the learned stages (.safetensors; default: bundled)")
    parser.add_argument("--stages", default="guided_inpainting", choices=STAGES,
                        help="deepest stage to run (default: all three)")
    parser.add_argument("--flow-method", default="dis", choices=FLOW_METHODS,
                        help="optical flow for the reference (default dis)")
    parser.add_argument("--no-progress", action="store_true",
                        help="do not draw the progress bar on stderr")


def _print_warnings(caught: list, write) -> None:
    for w in caught:
        write(f"warning: {w.message}")
    caught.clear()


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    t0 = time.perf_counter()
    if args.max_distance < 1:
        raise ValueError(f"--max-distance must be at least 1, got {args.max_distance}.")
    stack = read_stack(args.input, name="input")
    masks = read_stack(args.mask, name="mask")
    if tuple(masks.shape) != tuple(stack.shape):
        raise ValueError(
            f"the mask {args.mask!r} has shape {tuple(masks.shape)} but the input "
            f"{args.input!r} has shape {tuple(stack.shape)}; they must match voxel for voxel."
        )
    if np.dtype(stack.dtype).type not in SUPPORTED_DTYPES:
        raise TypeError(
            f"the input has dtype {stack.dtype}; expected uint8, uint16, float32 or float64. "
            "Convert the stack first (e.g. in Fiji: Image > Type)."
        )
    # fail before any work: the output path, the engine settings
    writer = StackWriter(args.output, stack.shape, stack.dtype, base=stack,
                         overwrite=args.overwrite, protect=(args.input, args.mask),
                         voxel_size=read_voxel_size(args.input))
    try:
        engine = FlowInpainter(args.weights, device=args.device, stages=args.stages,
                               flow_method=args.flow_method)
        damaged = damaged_z(masks)
        todo = damaged
        if args.slices:
            wanted = parse_slices(args.slices, stack.shape[0])
            clean = [z for z in wanted if z not in set(damaged)]
            if clean:
                print(f"note: slice(s) {format_slices(clean)} have an empty mask and are "
                      "copied unchanged.", file=sys.stderr)
            todo = [z for z in wanted if z in set(damaged)]
        orphans = [z for z in todo
                   if find_neighbours(stack, z, masks=masks,
                                      max_distance=args.max_distance) == (None, None)]
        if orphans:
            raise ValueError(
                f"slice(s) {format_slices(orphans)} have no usable neighbour within "
                f"{args.max_distance} slices (the neighbours are blank or more than half "
                "damaged); raise --max-distance or leave them out with --slices."
            )
        with warnings.catch_warnings(record=True) as caught, \
                tqdm(total=len(todo), unit="slice", desc="repair", file=sys.stderr,
                     disable=args.no_progress or not todo) as bar:
            warnings.simplefilter("always")
            for z, repaired in iter_repair_stack(stack, masks, inpainter=engine, slices=todo,
                                                 max_distance=args.max_distance):
                writer[z] = repaired
                _print_warnings(caught, lambda m: tqdm.write(m, file=sys.stderr))
                bar.update(1)
                bar.set_postfix_str(f"z={z}")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    seconds = time.perf_counter() - t0
    if todo:
        print(f"repaired {len(todo)} slice(s) ({format_slices(todo)}) of {stack.shape[0]} "
              f"with method {engine.method!r} (flow {engine.flow_method}, device "
              f"{engine.device}) in {seconds:.1f} s; wrote {args.output}")
    else:
        print(f"no slice to repair (the mask marks no damage"
              f"{' in the chosen slices' if args.slices else ''}); wrote an unchanged copy "
              f"to {args.output} in {seconds:.1f} s")
    return 0
