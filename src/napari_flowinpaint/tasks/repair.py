"""Stack-level repair: choose the neighbours of a damaged slice, repair one or many slices
of an array stack. Stack files and whole volumes: :mod:`napari_flowinpaint.tasks.volume`."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..engine import as_mask, as_slice, section_index

if TYPE_CHECKING:
    from ..engine import FlowInpainter

__all__ = ["find_neighbours", "repair_slice", "iter_repair_stack", "repair_stack",
           "damaged_z", "damaged_pixels", "parse_slices", "format_slices"]


def _check_stack(stack) -> tuple[int, ...]:
    shape = tuple(getattr(stack, "shape", np.shape(stack)))
    if len(shape) != 3:
        raise ValueError(
            f"expected a 3-D stack of sections with axes (z, y, x), got shape {shape}. "
            "For a single 2-D section there are no neighbours to repair from; for multichannel "
            "or time-lapse data pick one channel/time point first."
        )
    if shape[0] < 2:
        raise ValueError(
            f"the stack has {shape[0]} section(s); repairing from neighbours needs at least 2."
        )
    if min(shape[1:]) < 2:
        raise ValueError(f"the stack's sections are {shape[1]} x {shape[2]} pixels; at least "
                         "2 x 2 are needed.")
    return shape


def _stack_mask(masks, shape):
    """Normalise a 3-D mask stack (or None) to something indexable per slice, lazily."""
    if masks is None:
        return None
    mshape = tuple(getattr(masks, "shape", np.shape(masks)))
    if mshape != tuple(shape):
        raise ValueError(
            f"the mask stack has shape {mshape} but the image stack has shape {tuple(shape)}."
        )
    return masks


def _usable(stack, masks, z: int, max_damage: float, hole=None,
            max_overlap: float = 0.25) -> tuple[bool, bool]:
    """Whether section ``z`` can serve as a neighbour at all, and whether it is also clear
    of damage where ``hole`` is (its damage covers at most ``max_overlap`` of the hole)."""
    clear = True
    if masks is not None:
        damage = as_mask(np.asarray(masks[z]), name=f"mask[{z}]")
        if float(np.mean(damage)) > max_damage:
            return False, False
        if hole is not None and hole.any():
            clear = float(np.mean(damage[hole])) <= max_overlap
    sl = np.asarray(stack[z])
    usable = bool(sl.max() != sl.min())  # a blank (constant) section is a missing one
    return usable, usable and clear


def find_neighbours(stack, z: int, *, masks=None, max_distance: int = 3,
                    max_damage: float = 0.5, hole=None,
                    max_overlap: float = 0.25) -> tuple[int | None, int | None]:
    """The nearest usable sections before and after ``z``.

    A section is unusable when it is blank (constant) or, given ``masks``, when more than
    ``max_damage`` of it is marked damaged. Given ``hole`` (the damage of section ``z``,
    True = damaged), a section where more than ``max_overlap`` of the hole is damaged too is
    passed over for the next one on that side (damage on consecutive sections at the same
    place would be copied into the repair); when none within ``max_distance`` is clear
    there, the nearest usable one is taken all the same.
    Sections up to ``max_distance`` away are tried.

    Returns
    -------
    (z_prev, z_next) : each an int, or None when no usable section exists on that side.
    """
    shape = _check_stack(stack)
    z = section_index(z)
    if not 0 <= z < shape[0]:
        raise IndexError(f"slice z={z} is outside the stack (0 to {shape[0] - 1}).")
    masks = _stack_mask(masks, shape)
    if hole is not None:
        hole = as_mask(hole, shape[1:], name="hole")
    found = []
    for step in (-1, 1):
        first = None  # the nearest usable section, clear of the hole's damage or not
        for zz in (z + step * d for d in range(1, max_distance + 1)):
            if not 0 <= zz < shape[0]:
                break
            usable, clear = _usable(stack, masks, zz, max_damage, hole, max_overlap)
            if clear:
                first = zz
                break
            if usable and first is None:
                first = zz
        found.append(first)
    return found[0], found[1]


def repair_slice(stack, z: int, mask, *, masks=None, inpainter: FlowInpainter | None = None,
                 max_distance: int = 3, return_confidence: bool = False,
                 return_report: bool = False):
    """Repair section ``z`` of ``stack`` where ``mask`` marks damage.

    The nearest usable neighbours on each side are chosen with :func:`find_neighbours`
    and ``alpha`` follows from their distances (a neighbour two sections away counts less
    than one next door). At the first or last section, or when no usable neighbour exists on
    one side, the one remaining neighbour is the reference and a warning says so.

    Parameters
    ----------
    stack : array_like, shape (Z, Y, X)
        numpy, zarr or dask array; only the needed sections are read. Never modified.
    z : int
        Index of the damaged section.
    mask : array_like, shape (Y, X)
        True (or a nonzero label) marks damaged pixels of section ``z``.
    masks : array_like, shape (Z, Y, X), optional, keyword-only
        Damage masks of the whole stack, used to skip badly damaged neighbours.
    inpainter : FlowInpainter, optional, keyword-only
        The engine to use (a default one is created otherwise).
    max_distance : int, keyword-only
        How far to look for a usable neighbour on each side.
    return_confidence : bool, keyword-only
        Also return the repair's confidence map (float32 (Y, X) in [0, 1], 1 = reliable;
        see :meth:`FlowInpainter.inpaint <napari_flowinpaint.engine.FlowInpainter.inpaint>`).
    return_report : bool, keyword-only
        Also return the engine's :class:`~napari_flowinpaint.engine.RepairReport`, with the
        chosen neighbours added to its notes.

    Returns
    -------
    repaired : ndarray, shape (Y, X)
        The repaired section, a new array of the stack's dtype.
    confidence : ndarray, shape (Y, X), float32
        Only with ``return_confidence=True``.
    report : RepairReport
        Only with ``return_report=True`` (last).
    """
    shape = _check_stack(stack)
    z = section_index(z)
    mask = as_mask(mask, shape[1:])
    z_prev, z_next = find_neighbours(stack, z, masks=masks, max_distance=max_distance, hole=mask)
    if z_prev is None and z_next is None:
        raise ValueError(
            f"section {z} has no usable neighbour within {max_distance} sections on either "
            "side (they are blank or too damaged); nothing to repair it from."
        )
    if z_prev is None or z_next is None:
        where = "first" if z == 0 else "last" if z == shape[0] - 1 else "edge"
        only = z_next if z_prev is None else z_prev
        warnings.warn(
            f"section {z} has a usable neighbour on one side only ({where} section or damaged "
            f"neighbours): section {only} is used as the reference without interpolation.",
            UserWarning, stacklevel=2,
        )
    alpha = 0.5
    if z_prev is not None and z_next is not None:
        alpha = (z - z_prev) / (z_next - z_prev)
    engine = inpainter if inpainter is not None else _default_engine()
    # checked here so that an error names the section, not the engine's argument
    prev, nxt = (None if k is None else as_slice(np.asarray(stack[k]), f"section {k} ({role})")
                 for k, role in ((z_prev, "the neighbour before"), (z_next, "the neighbour after")))
    section = as_slice(np.asarray(stack[z]), f"section {z} (the one to repair)")
    *results, report = engine.inpaint(prev, section, nxt, mask, alpha=alpha,
                                      return_confidence=return_confidence, return_report=True)
    report.notes.append(f"neighbours: previous={z_prev}, next={z_next}, alpha={alpha:.3g}")
    results += [report] if return_report else []
    return tuple(results) if len(results) > 1 else results[0]


def damaged_pixels(masks) -> dict[int, int]:
    """``{z: damaged pixel count}`` of the sections whose mask marks at least one.

    ``masks`` is any array with a ``shape`` (numpy, zarr, dask), read one section at a time.
    """
    n = getattr(masks, "shape", np.shape(masks))[0]
    counts = ((z, int(np.count_nonzero(masks[z]))) for z in range(n))
    return {z: c for z, c in counts if c}


def damaged_z(masks) -> list[int]:
    """Indices of the sections whose mask marks at least one damaged pixel (see
    :func:`damaged_pixels`)."""
    return list(damaged_pixels(masks))


def iter_repair_stack(stack, masks, *, inpainter: FlowInpainter | None = None,
                      slices=None, max_distance: int = 3) -> Iterator[tuple[int, np.ndarray]]:
    """Repair every section whose mask is non-empty, yielding ``(z, repaired)`` one by one.

    A generator, so callers show progress, stop early (just stop iterating) and keep what
    is done. Neighbours are always read from the original ``stack`` (damaged neighbours are
    skipped using ``masks``), so the result does not depend on the order of work.
    """
    shape = _check_stack(stack)
    masks = _stack_mask(masks, shape)
    if masks is None:
        raise ValueError("iter_repair_stack needs a mask stack of the same shape as the stack.")
    engine = inpainter if inpainter is not None else _default_engine()
    todo = damaged_z(masks) if slices is None else [int(z) for z in slices]
    for z in todo:
        yield z, repair_slice(stack, z, np.asarray(masks[z]), masks=masks, inpainter=engine,
                              max_distance=max_distance)


def repair_stack(stack, masks, *, inpainter: FlowInpainter | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 max_distance: int = 3) -> np.ndarray:
    """Repair a whole in-memory stack; returns a new array (``stack`` is not modified).

    ``progress(done, total)`` is called after each section; when ``should_stop()``
    returns True the work stops and the sections finished so far are kept in the result.
    """
    shape = _check_stack(stack)
    masks = _stack_mask(masks, shape)
    out = np.array(stack, copy=True)
    total = len(damaged_z(masks))
    for i, (z, repaired) in enumerate(
        iter_repair_stack(stack, masks, inpainter=inpainter, max_distance=max_distance)
    ):
        out[z] = repaired
        if progress is not None:
            progress(i + 1, total)
        if should_stop is not None and should_stop():
            break
    return out


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


def _default_engine():
    from ..engine import FlowInpainter

    return FlowInpainter()
