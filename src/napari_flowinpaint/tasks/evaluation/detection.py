"""Score the damage detector on simulated damage of a real stack.

Every real section of the range is first judged as it is, between its neighbours
``spacing`` sections away (as serial sections): these are the clean sections. Then, for each
kind of :data:`~napari_flowinpaint.tasks.simulation.DAMAGE_KINDS` and each sample, a random
section is damaged by :func:`~napari_flowinpaint.tasks.simulation.simulate_damage`, its
neighbours are left as they are and
:func:`~napari_flowinpaint.tasks.detection.detect_damage` judges it. Reported per kind: the
pixel F1 (mean over samples, and pooled over all pixels), precision, recall, the share of
damaged slices flagged; and over the real, undamaged slices the share flagged.

In real stacks damage often sits next to damage. With ``neighbour_damage=p``, each neighbour
of the judged section (clean or damaged) is itself damaged with probability ``p``, by a kind
and at a place of its own, so the scores also say how the detector copes with damaged
neighbours.

A dark body that runs through a section and its neighbour is tissue, not damage; the last
row scores every real section again with such a structure drawn in it and in one neighbour
(:func:`~napari_flowinpaint.tasks.simulation.continuing_structure`, a random stream of its own):
the share of these sections flagged is a false-alarm rate too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..detection import detect_damage, normal_region_area
from ..io import SectionRange, load_if_small
from ..simulation import DAMAGE_KINDS, continuing_structure, simulate_damage
from .repair import parse_z_range

__all__ = ["evaluate_detection", "format_detection_table"]


def _f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def evaluate_detection(stack, *, spacing: int = 1, z_range=None, samples: int = 20,
                       kinds=DAMAGE_KINDS, seed: int = 0, sensitivity: float = 0.5,
                       min_area: int = 100, neighbour_damage: float = 0.0,
                       continuing: bool = True, weights=None, known_damaged=(),
                       relative: bool = True, fold_margin: bool = True,
                       progress: Callable[[int, int], None] | None = None) -> dict:
    """Detection scores on simulated damage of ``stack``.

    Parameters
    ----------
    stack : array_like, shape (Z, H, W)
        A real stack, taken as clean: numpy, zarr or dask; a lazy one over 1 GB is read a
        few sections at a time, never whole. Not modified.
    spacing : int, keyword-only
        Use every ``spacing``-th section (take 3-5 for isotropic FIB-SEM data, to mimic
        serial sections).
    z_range : str or (int, int) or None, keyword-only
        Sections to use, e.g. ``"200:"``; default all.
    samples : int, keyword-only
        Damaged sections per kind (sections are drawn at random, with replacement).
    kinds : sequence of str, keyword-only
        Damage kinds to score.
    seed : int, keyword-only
        Seed of the sample draw and of the simulated damage.
    sensitivity, min_area : keyword-only
        Passed to :func:`detect_damage`. A slice is flagged when a region of at least
        ``min_area`` pixels is found.
    neighbour_damage : float, keyword-only
        Probability in [0, 1] that each neighbour of a judged section is damaged too (a
        random kind of :data:`~napari_flowinpaint.tasks.simulation.DAMAGE_KINDS`). 0 (default):
        the neighbours are the real sections. Drawn from a random stream of its own, so the
        damaged sections and their defects are the same whatever this is.
    continuing : bool, keyword-only
        Also judge every real section with a dark body drawn in it and in one neighbour
        alike (tissue running through both: no section should be flagged for it).
    weights : path, optional, keyword-only
        Detector weights to score (default: the bundled ones).
    known_damaged : sequence of int, keyword-only
        Real sections (indices into ``stack``) that carry real damage, found by inspection:
        they are judged like the others but left out of the clean (undamaged) count and
        reported under ``"known_damaged"`` with whether each was flagged. They are not drawn
        for simulated damage: their real damage, absent from the simulated truth, would be
        scored as false pixels.
    relative : bool, keyword-only
        Judge relative to what is normal for this stack, as
        :func:`~napari_flowinpaint.tasks.detection.detect_damage` does by default: its
        :func:`~napari_flowinpaint.tasks.detection.normal_region_area` is measured once on
        the real sections of the range (reported as ``settings["normal_area"]``).
    fold_margin : bool, keyword-only
        Give fold-like regions their margin, as
        :func:`~napari_flowinpaint.tasks.detection.detect_damage` does by default (it costs
        precision against the simulated fold's band; False scores the band as drawn).

    Returns
    -------
    dict
        ``{"kinds": {kind: {"f1", "f1_pooled", "precision", "recall", "flagged",
        "samples"}}, "damaged_flagged", "clean": {"slices", "flagged", "false_pixel_fraction"},
        "continuing": {same keys as clean} (when ``continuing``), "known_damaged":
        {z: flagged}, "seconds_per_slice", "settings"}``.
    """
    stack = load_if_small(stack)  # a big lazy stack: only the sections each judgement needs
    if len(stack.shape) != 3:
        raise ValueError(f"expected a stack (Z, H, W), got shape {tuple(stack.shape)}.")
    spacing = int(spacing)
    if spacing < 1:
        raise ValueError(f"spacing must be >= 1, got {spacing}.")
    start, stop = parse_z_range(z_range, stack.shape[0])
    if stop - start < 2 * spacing + 1:
        raise ValueError(f"{stop - start} sections in range; at spacing {spacing} at least "
                         f"{2 * spacing + 1} are needed.")
    for k in kinds:
        if k not in DAMAGE_KINDS:
            raise ValueError(f"unknown damage kind {k!r}; expected some of {DAMAGE_KINDS}.")

    known = sorted({int(z) for z in known_damaged})
    outside = [z for z in known if not start <= z < stop]
    if outside:
        raise ValueError(f"known_damaged sections {outside} lie outside the range "
                         f"{start}:{stop} being scored.")
    if len(known) >= stop - start:
        raise ValueError("known_damaged lists every section of the range: none is left to "
                         "judge as undamaged.")
    neighbour_damage = float(neighbour_damage)
    if not 0.0 <= neighbour_damage <= 1.0:
        raise ValueError(f"neighbour_damage is a probability in [0, 1], got {neighbour_damage}.")
    neighbour_rng = np.random.default_rng([seed, 1])

    def around(z: int, section=None):
        """Section z (or a replacement) between its serial neighbours, up to 2 each side."""
        zs = [k for k in range(z - 2 * spacing, z + 2 * spacing + 1, spacing)
              if start <= k < stop]
        part = np.stack([np.asarray(stack[k]) for k in zs])
        i = zs.index(z)
        if section is not None:
            part[i] = section
        if neighbour_damage > 0:
            for j in range(len(zs)):
                if j != i and neighbour_rng.random() < neighbour_damage:
                    kind = DAMAGE_KINDS[int(neighbour_rng.integers(len(DAMAGE_KINDS)))]
                    part[j] = simulate_damage(part[j], kind, neighbour_rng)[0]
        return part, i

    # what is normal for this stack, measured once on its real (serial) sections of the range
    normal = normal_region_area(SectionRange(stack, start, stop, spacing),
                                sensitivity=sensitivity, min_area=min_area,
                                weights=weights) if relative else 0
    rng = np.random.default_rng(seed)
    total = len(kinds) * samples + (stop - start) + (stop - start - len(known)) * continuing
    done = 0

    def judge(part, i) -> tuple[np.ndarray, float]:
        """The detector's mask of part[i] and the seconds it took; advances the progress."""
        nonlocal done
        t0 = time.perf_counter()
        m = detect_damage(part, i, sensitivity=sensitivity, min_area=min_area,
                          weights=weights, relative=relative, normal_area=normal,
                          fold_margin=fold_margin)
        dt = time.perf_counter() - t0
        done += 1
        if progress:
            progress(done, total)
        return m, dt

    drawable = [z for z in range(start, stop) if z not in known]
    seconds = []
    clean_flags, clean_frac, known_flags = [], [], {}
    for z in range(start, stop):  # every real section, judged as it is
        m, dt = judge(*around(z))
        seconds.append(dt)
        if z in known:
            known_flags[z] = bool(m.any())
        else:
            clean_flags.append(bool(m.any()))
            clean_frac.append(float(m.mean()))
    out = {}
    for kind in kinds:
        f1s, flagged = [], []
        tp = fp = fn = 0
        prs = []
        for _ in range(samples):
            z = drawable[int(rng.integers(len(drawable)))]
            damaged, truth = simulate_damage(np.asarray(stack[z]), kind, rng)
            found, dt = judge(*around(z, damaged))
            seconds.append(dt)
            a = int(np.count_nonzero(found & truth))
            b = int(np.count_nonzero(found & ~truth))
            c = int(np.count_nonzero(~found & truth))
            tp, fp, fn = tp + a, fp + b, fn + c
            p, r, f = _f1(a, b, c)
            f1s.append(f)
            prs.append((p, r))
            flagged.append(bool(found.any()))
        p_all, r_all, f_all = _f1(tp, fp, fn)
        out[kind] = {"f1": float(np.mean(f1s)), "f1_pooled": f_all,
                     "precision": float(np.mean([p for p, _ in prs])),
                     "recall": float(np.mean([r for _, r in prs])),
                     "flagged": float(np.mean(flagged)), "samples": samples}
    extra = {}
    if continuing:  # after the rest, from a stream of its own: the numbers above stay
        crng = np.random.default_rng([seed, 2])
        flags, fracs = [], []
        for z in (z for z in range(start, stop) if z not in known):
            part, i = around(z)
            j = i + (1 if i + 1 < len(part) and (i == 0 or crng.random() < 0.5) else -1)
            part[i], part[j] = continuing_structure(part[i], part[j], crng)
            m, _ = judge(part, i)
            flags.append(bool(m.any()))
            fracs.append(float(m.mean()))
        extra["continuing"] = {"slices": len(flags), "flagged": float(np.mean(flags)),
                               "false_pixel_fraction": float(np.mean(fracs))}
    return {
        "kinds": out,
        "damaged_flagged": float(np.mean([r["flagged"] for r in out.values()])),
        "clean": {"slices": len(clean_flags), "flagged": float(np.mean(clean_flags)),
                  "false_pixel_fraction": float(np.mean(clean_frac))},
        **extra,
        "known_damaged": known_flags,
        "seconds_per_slice": float(np.median(seconds)),
        "settings": {"spacing": spacing, "z_range": [start, stop], "samples": samples,
                     "seed": seed, "sensitivity": sensitivity, "min_area": min_area,
                     "neighbour_damage": neighbour_damage, "shape": list(stack.shape[1:]),
                     "weights": None if weights is None else str(weights),
                     "known_damaged": known, "relative": bool(relative),
                     "fold_margin": bool(fold_margin),
                     "normal_area": normal},
    }


def format_detection_table(report: dict) -> str:
    """A Markdown table of one :func:`evaluate_detection` report."""
    lines = ["| damage | pixel F1 | pooled F1 | precision | recall | slices flagged |",
             "|---|---|---|---|---|---|"]
    for kind, r in report["kinds"].items():
        lines.append(f"| {kind} | {r['f1']:.3f} | {r['f1_pooled']:.3f} | {r['precision']:.3f} "
                     f"| {r['recall']:.3f} | {100 * r['flagged']:.0f} % |")
    c = report["clean"]
    lines.append(f"| all damaged slices | | | | | {100 * report['damaged_flagged']:.0f} % |")
    beside = report.get("settings", {}).get("neighbour_damage", 0.0)
    what = "real" + (f", neighbours damaged at p = {beside:g}" if beside else "")
    known = report.get("known_damaged") or {}
    if known:
        what += ", known damaged left out"
    lines.append(f"| none ({what}, {c['slices']} slices) | | | | "
                 f"false pixels {100 * c['false_pixel_fraction']:.2f} % | "
                 f"{100 * c['flagged']:.0f} % |")
    for z, flagged in known.items():
        lines.append(f"| real section {z}, known damaged | | | | | "
                     f"{'flagged' if flagged else 'not flagged'} |")
    if "continuing" in report:
        c = report["continuing"]
        lines.append(f"| none (real, a dark body continuing into a neighbour, {c['slices']} "
                     f"slices) | | | | false pixels {100 * c['false_pixel_fraction']:.2f} % | "
                     f"{100 * c['flagged']:.0f} % |")
    return "\n".join(lines)
