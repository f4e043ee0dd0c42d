"""False alarms of the damage detector on clean sections, as they are and with section-to-
section brightness/contrast flicker (issue: a stack whose sections differ only by a
brightness/contrast change of up to +-25 % must not be flagged at all).

For each development stack's validation part (and, with ``--train``, the training parts),
every real section not known to be damaged is judged with ``detect_damage`` (default
settings: a section is *flagged* when it gets a region of at least 100 px). Then every
section gets its own random contrast gain and brightness factor, each uniform in
[0.75, 1.25] (seeded), and the stack is judged again.

    .venv/bin/python benchmarks/flicker_detection.py [--train] [--weights W]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_flowinpaint.tasks.detection import detect_damage

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: name -> (file, validation z range, training z range, sections known to be damaged)
STACKS = {
    "isbi2012": ("isbi2012_test", (0, 30), ("isbi2012_train", (0, 30)), ()),
    "fibsem_medulla_ts1": ("fibsem_medulla_ts1", (200, 250), ("fibsem_medulla_ts1", (0, 200)),
                           ()),
    # z 4 smeared; 9, 13, 16, 20, 29, 30, 43, 48 out of focus (see adapt_detection.py)
    "callosum_sssem": ("callosum_sssem", (36, 50), ("callosum_sssem", (0, 36)),
                       (4, 9, 13, 16, 20, 29, 30, 43, 48)),
    "cdeep3m_sbem": ("cdeep3m_sbem", (15, 20), ("cdeep3m_sbem", (0, 15)), ()),
}


def flicker(stack: np.ndarray, seed: int = 0, amount: float = 0.25) -> np.ndarray:
    """Each section with its own contrast gain (about its mean) and brightness factor, both
    uniform in [1 - amount, 1 + amount], as float32: nothing is clipped (clipping would
    make saturated, flat regions: a different thing, which the detector rightly flags)."""
    rng = np.random.default_rng(seed)
    out = np.empty(stack.shape, np.float32)
    for z, sec in enumerate(stack):
        f = sec.astype(np.float32)
        gain, bright = rng.uniform(1 - amount, 1 + amount, 2)
        out[z] = ((f - f.mean()) * gain + f.mean()) * bright
    return out


def flagged(stack: np.ndarray, skip, weights=None) -> tuple[list[int], int]:
    masks = detect_damage(stack, weights=weights)
    judged = [z for z in range(len(stack)) if z not in skip]
    return [z for z in judged if masks[z].any()], len(judged)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", action="store_true", help="the training parts too")
    ap.add_argument("--weights", default=None, help="detector weights (default: bundled)")
    ap.add_argument("--no-match", action="store_true",
                    help="judge without matching the neighbours to each section (as before)")
    args = ap.parse_args()
    if args.no_match:
        import napari_flowinpaint.tasks.detection.evidence as evidence

        evidence.match_neighbour = lambda neighbour, section: neighbour
    print("| stack part | clean: flagged | with +-25 % flicker: flagged | s/section |")
    print("|---|---|---|---|")
    for val, vz, (train, tz), known in STACKS.values():
        parts = [(f"{val} z {vz[0]}-{vz[1] - 1}", val, vz)]
        if args.train:
            parts.append((f"{train} z {tz[0]}-{tz[1] - 1}", train, tz))
        for label, file, (z0, z1) in parts:
            stack = tifffile.imread(DATA / file / "raw.tif")[z0:z1]
            skip = {k - z0 for k in known}
            t0 = time.perf_counter()
            clean, n = flagged(stack, skip, args.weights)
            seconds = (time.perf_counter() - t0) / len(stack)
            flick, _ = flagged(flicker(stack), skip, args.weights)
            print(f"| {label} | {len(clean)} of {n} {clean} | {len(flick)} of {n} {flick} | "
                  f"{seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
