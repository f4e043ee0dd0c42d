"""Random training samples drawn from real stacks: (previous, truth, next) triplets for the
inpainting networks (:class:`TripletSampler`) and (input, target) pairs for the damage
detector (:class:`DetectorSampler`). Each draws from its own seeded generator, whose state
the checkpoints keep, so a resumed run sees the same samples as an uninterrupted one."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ...engine.pipeline import prepare_inputs
from ..detection import detector_input, stack_scale
from ..detection.cues import level_section, match_neighbour, stack_level
from ..io import SectionRange
from ..simulation import DAMAGE_KINDS, continuing_structure, random_mask, simulate_damage

__all__ = ["TripletSampler", "DetectorSampler"]


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
    p_lab : float
        Probability of each variation between labs and microscopes: another pixel size
        (0.5-2x, all three sections alike), added noise (up to 4 % of the range) and a
        slight blur (sigma 0.5-1.2 px), both alike in all three, and flicker (each neighbour
        its own contrast and brightness, up to +-25 %). 0 (default) draws none.
    """

    def __init__(self, stacks, *, crop: int = 128, rng=None, p_one_sided: float = 0.05,
                 p_whole: float = 0.03, ratio_range=(0.05, 0.6), p_lab: float = 0.0):
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
        self.p_lab = float(p_lab)

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
        side = c  # another pixel size: a bigger or smaller window brought to the crop
        if self.p_lab and rng.random() < self.p_lab:
            side = int(round(c / np.exp(rng.uniform(np.log(0.5), np.log(2.0)))))
            side = max(8, min(side, arr.shape[1], arr.shape[2]))
        y = int(rng.integers(0, arr.shape[1] - side + 1))
        x = int(rng.integers(0, arr.shape[2] - side + 1))
        tri = np.stack([np.asarray(arr[k, y:y + side, x:x + side]) for k in (z - dp, z, z + dn)])
        tri = tri.astype(np.float32) / (255.0 if tri.dtype == np.uint8 else float(tri.max() or 1))
        if side != c:
            tri = np.stack([cv2.resize(a, (c, c), interpolation=cv2.INTER_AREA if side > c
                                       else cv2.INTER_LINEAR) for a in tri])
        if self.p_lab:
            tri = self._lab(tri)
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

    def _lab(self, tri: np.ndarray) -> np.ndarray:
        """Noise and blur (all three alike) and flicker (each neighbour its own)."""
        rng, p = self.rng, self.p_lab
        if rng.random() < p:
            sigma = float(rng.uniform(0.5, 1.2))
            tri = np.stack([cv2.GaussianBlur(a, (0, 0), sigma) for a in tri])
        if rng.random() < p:
            tri = tri + rng.normal(0, rng.uniform(0.005, 0.04), tri.shape).astype(np.float32)
        if rng.random() < p:
            tri = tri.copy()
            for i in (0, 2):
                gain, bright = rng.uniform(0.75, 1.25, 2)
                m = float(tri[i].mean())
                tri[i] = ((tri[i] - m) * gain + m) * bright
        return tri.astype(np.float32)

    def batch(self, n: int) -> dict[str, torch.Tensor]:
        """``n`` samples stacked as (n, 1, crop, crop) float32 tensors."""
        items = [self.sample() for _ in range(n)]
        return {k: torch.from_numpy(np.stack([it[k] for it in items])[:, None].copy())
                for k in items[0]}


class DetectorSampler:
    """Random (input, target) pairs for the detector.

    Each sample is a section with its two neighbours, damaged by
    :func:`~napari_flowinpaint.tasks.simulation.simulate_damage` (every kind equally often
    unless ``kind_weights`` says otherwise, plus clean sections), turned into the detector's
    input as at inference (every section brought to the stack's level and the neighbours
    matched to the section, see
    :func:`~napari_flowinpaint.tasks.detection.iter_detect_damage`), cropped and augmented
    (90-degree rotations, flips, swapped neighbours, gain and offset of the grey-level scale,
    the section imaged a little apart from its neighbours; sometimes one or both neighbours
    are withheld).

    ``window`` (full-resolution pixels) reads only a random square of that side from each
    of the three sections (default: whole sections): much faster on big sections, and the
    stacks may then be lazy (zarr, dask) arrays. ``marks`` (one per stack, each None or an
    array of the stack's shape; nonzero marks damage the user painted) takes those pixels out
    of the loss: :meth:`sample` gives them weight 0. Sections listed in a source's ``skip``
    are never the judged section.

    ``continuing_lines`` is the share of the ``p_continuing`` samples whose continuing
    structure is a thin dark line (a myelin sheath or membrane running through both
    sections, which a thin fold must be told apart from) rather than dark blobs.

    ``p_lab`` is the probability of each of the variations between labs and microscopes,
    applied to all three sections alike (the target follows): a pixel size 0.5-2x the
    stack's, gamma 0.7-1.4, added noise (up to 4 % of the range) and a slight blur (sigma
    0.5-1.2 px); and of flicker: each neighbour with its own contrast and brightness, up to
    +-25 %, before the matching.
    """

    def __init__(self, stacks, *, crop: int = 192, rng=None, p_clean: float = 0.25,
                 p_one_sided: float = 0.1, p_alone: float = 0.05, kind_weights=None,
                 p_damaged_neighbour: float = 0.0, p_continuing: float = 0.0,
                 continuing_lines: float = 0.0, p_lab: float = 0.0,
                 window: int | None = None, marks=None):
        self.stacks = []
        marks = list(marks) if marks is not None else [None] * len(stacks)
        if len(marks) != len(stacks):
            raise ValueError(f"marks holds {len(marks)} entries for {len(stacks)} stacks; "
                             "give one (or None) per stack.")
        for (arr, src), marked in zip(stacks, marks, strict=True):
            z0, z1 = max(0, src.z_range[0]), min(arr.shape[0], src.z_range[1])
            if marked is not None and tuple(marked.shape) != tuple(arr.shape):
                raise ValueError(f"{src.path}: the marks have shape {tuple(marked.shape)}; "
                                 f"expected the stack's {tuple(arr.shape)}.")
            centres = [z for z in range(z0 + min(src.spacings), z1 - min(src.spacings))
                       if z not in set(src.skip)]
            if not centres:
                raise ValueError(f"{src.path}: no section of z {z0}:{z1} is left to sample "
                                 f"({len(src.skip)} skipped).")
            part = SectionRange(arr, z0, z1)  # a lazy stack's range is not read whole
            level = stack_level(part)
            self.stacks.append((arr, src, z0, z1, stack_scale(part, level), level,
                                marked, frozenset(src.skip)))
        self.window = None if window is None else int(window)
        w = np.array([s[1].weight for s in self.stacks], float)
        self.weights = w / w.sum()
        self.crop = int(crop)
        self.rng = np.random.default_rng(rng)
        self.p_clean, self.p_one_sided, self.p_alone = p_clean, p_one_sided, p_alone
        self.p_damaged_neighbour = p_damaged_neighbour
        self.p_continuing = p_continuing
        self.continuing_lines = float(continuing_lines)
        self.p_lab = float(p_lab)
        kw = dict(kind_weights or {})
        unknown = set(kw) - set(DAMAGE_KINDS)
        if unknown:
            raise ValueError(f"unknown damage kinds {sorted(unknown)} in kind_weights; "
                             f"expected some of {DAMAGE_KINDS}.")
        k = np.array([float(kw.get(name, 1.0)) for name in DAMAGE_KINDS])
        if (k < 0).any() or k.sum() <= 0:
            raise ValueError(f"kind_weights must be >= 0 and not all 0, got {kw}.")
        self.kind_p = k / k.sum()

    def _read(self, arr, marked, zs):
        """The three sections (or a random window of them) and the section's marks."""
        h, w = arr.shape[1:]
        ys = xs = slice(None)
        if self.window is not None and (h > self.window or w > self.window):
            y = int(self.rng.integers(0, max(1, h - self.window + 1)))
            x = int(self.rng.integers(0, max(1, w - self.window + 1)))
            ys, xs = slice(y, y + self.window), slice(x, x + self.window)
        trio = [np.asarray(arr[k, ys, xs]) for k in zs]
        ignore = None if marked is None else np.asarray(marked[zs[1], ys, xs]) != 0
        return trio, ignore

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One sample: input (8, h, w), target (h, w) (1 = damaged) and the loss weight of
        each pixel (h, w) (0 where the user marked damage), float32."""
        rng = self.rng
        arr, src, z0, z1, scale, level, marked, skip = self.stacks[
            rng.choice(len(self.stacks), p=self.weights)]
        for _ in range(1000):
            dp, dn = (int(rng.choice(src.spacings)) for _ in range(2))
            if z1 - z0 > dp + dn:
                z = int(rng.integers(z0 + dp, z1 - dn))
                if z not in skip:
                    break
        (prev, sec, nxt), ignore = self._read(arr, marked, (z - dp, z, z + dn))
        if self.p_lab and rng.random() < self.p_lab:  # another pixel size
            # not below the crop (at half resolution): a batch is cut to its smallest item
            least = min(2.0, max(0.5, (2 * self.crop + 8) / min(sec.shape)))
            f = float(np.exp(rng.uniform(np.log(least), np.log(2.0))))
            size = tuple(int(round(n * f)) for n in sec.shape[::-1])
            prev, sec, nxt = (cv2.resize(a.astype(np.float32), size,
                                         interpolation=cv2.INTER_AREA if f < 1
                                         else cv2.INTER_LINEAR) for a in (prev, sec, nxt))
            if ignore is not None:
                ignore = cv2.resize(ignore.astype(np.uint8), size,
                                    interpolation=cv2.INTER_NEAREST).astype(bool)
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
            shape = ("line" if self.continuing_lines and rng.random() < self.continuing_lines
                     else "blobs")
            if nxt is None or (prev is not None and rng.random() < 0.5):
                sec, prev = continuing_structure(sec, prev, rng, shape=shape)
            else:
                sec, nxt = continuing_structure(sec, nxt, rng, shape=shape)
        lo, hi = scale
        if self.p_lab:
            prev, sec, nxt = self._lab(prev, sec, nxt, lo, hi - lo)
        # as the detection does: the neighbours matched to the section, then all three at
        # the stack's level, measured on the neighbours
        like = (match_neighbour(prev, sec), match_neighbour(nxt, sec))
        prev, sec, nxt = [None if a is None else level_section(a, level, like=like)
                          for a in (like[0], sec, like[1])]
        # intensity augmentation through the grey-level scale, so that the cues computed
        # from the grey levels stay consistent; the section may be imaged a little apart
        span = hi - lo
        lo = lo + rng.uniform(-0.1, 0.1) * span
        hi = lo + span * rng.uniform(0.8, 1.25)
        if rng.random() < 0.3:
            sec = lo + (sec.astype(np.float32) - lo) * rng.uniform(0.9, 1.1) \
                + rng.uniform(-0.05, 0.05) * span
        x = detector_input(prev, sec, nxt, (lo, hi))
        h, w = x.shape[1:]
        t = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
        wt = np.ones((h, w), np.float32)
        if ignore is not None and ignore.any():  # painted damage: neither damage nor clean
            wt[cv2.resize(ignore.astype(np.float32), (w, h),
                          interpolation=cv2.INTER_AREA) > 0] = 0.0
        c = min(self.crop, h, w)
        if t.any() and rng.random() < 0.7:  # a crop holding damage, anywhere in it
            ys, xs = np.nonzero(t)
            i = int(rng.integers(len(ys)))
            y0 = int(np.clip(ys[i] - rng.integers(c), 0, h - c))
            x0 = int(np.clip(xs[i] - rng.integers(c), 0, w - c))
        else:
            y0, x0 = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        x = x[:, y0:y0 + c, x0:x0 + c]
        t, wt = t[y0:y0 + c, x0:x0 + c], wt[y0:y0 + c, x0:x0 + c]
        k = int(rng.integers(4))
        x, t, wt = np.rot90(x, k, axes=(1, 2)), np.rot90(t, k), np.rot90(wt, k)
        if rng.random() < 0.5:
            x, t, wt = x[:, :, ::-1], t[:, ::-1], wt[:, ::-1]
        if rng.random() < 0.5:  # swap the neighbours (and their cue channels)
            x = x[[2, 1, 0, 3, 4, 7, 6, 5]]
        return tuple(np.ascontiguousarray(a, np.float32) for a in (x, t, wt))

    def _lab(self, prev, sec, nxt, lo: float, span: float):
        """Gamma, noise, blur (all three alike) and flicker (each neighbour its own)."""
        rng, p = self.rng, self.p_lab
        trio = [None if a is None else np.asarray(a, np.float32) for a in (prev, sec, nxt)]
        if rng.random() < p:
            g = float(rng.uniform(0.7, 1.4))
            trio = [None if a is None else
                    lo + span * np.clip((a - lo) / span, 0, None) ** g for a in trio]
        if rng.random() < p:
            sigma = float(rng.uniform(0.5, 1.2))
            trio = [None if a is None else cv2.GaussianBlur(a, (0, 0), sigma) for a in trio]
        if rng.random() < p:
            sd = float(rng.uniform(0.005, 0.04)) * span
            trio = [None if a is None else a + rng.normal(0, sd, a.shape).astype(np.float32)
                    for a in trio]
        if rng.random() < p:
            for i in (0, 2):
                if trio[i] is not None:
                    a = trio[i]
                    gain, bright = rng.uniform(0.75, 1.25, 2)
                    trio[i] = ((a - a.mean()) * gain + a.mean()) * bright
        return trio

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` samples: inputs (n, 8, c, c), targets and weights (n, 1, c, c)."""
        items = [self.sample() for _ in range(n)]
        c = min(min(x.shape[1:]) for x, _, _ in items)
        xs = np.stack([x[:, :c, :c] for x, _, _ in items])
        ts = np.stack([t[:c, :c] for _, t, _ in items])[:, None]
        ws = np.stack([w[:c, :c] for _, _, w in items])[:, None]
        return torch.from_numpy(xs), torch.from_numpy(ts), torch.from_numpy(ws)
