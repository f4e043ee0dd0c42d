"""The pictures of the QC report (:mod:`.qc_report`): one contact sheet per repaired section,
a PNG of panels side by side, each a section shrunk to at most ``size`` pixels a side.

The panels of a sheet share one grey scale (from the repaired section), so that the repair
and its neighbours can be compared by eye; the damaged section has the mask's outline in red;
the confidence map is drawn in colour on the repair's damaged pixels, red where the repair is
least sure, through yellow, to pale yellow where it is reliable (the colours of the napari
widget's overlay).
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["GAP", "confidence_panel", "contact_sheet", "grey_panel", "grey_range",
           "outline_panel", "palette", "shrink"]

#: Pixels of white between two panels.
GAP = 6
#: A sheet is a palette image (a third of the bytes of RGB): grey levels first, then the
#: outline's red, then the confidence colours, then white (the gaps) and the empty panel.
_GREYS = 192
_OUTLINE = _GREYS
_CONF0, _CONFS = _GREYS + 1, 60
_WHITE, _EMPTY = _CONF0 + _CONFS, _CONF0 + _CONFS + 1
#: Confidence 0 -> 1: red, yellow (at 0.6), pale yellow (as the napari widget's overlay).
_STOPS = np.array([0.0, 0.6, 1.0])
_COLOURS = np.array([[230, 13, 13], [255, 217, 26], [255, 255, 190]])


def palette() -> list[int]:
    """The sheets' palette, flat RGB (see :func:`contact_sheet`)."""
    greys = np.repeat(np.round(np.linspace(0, 255, _GREYS))[:, None], 3, axis=1)
    levels = np.linspace(0, 1, _CONFS)
    confs = np.stack([np.interp(levels, _STOPS, _COLOURS[:, k]) for k in range(3)], axis=1)
    rows = np.concatenate([greys, [[255, 32, 32]], confs, [[255, 255, 255], [200, 200, 200]]])
    return [int(v) for v in np.round(rows).ravel()]


def shrink(section, size: int, *, reduce: str = "mean") -> np.ndarray:
    """``section`` made at most ``size`` pixels a side by an integer factor: the mean of each
    block (``reduce="max"``: whether any pixel of a block is set, for a mask). The rows and
    columns that do not fill a last block are left out."""
    a = np.asarray(section)
    f = max(1, -(-max(a.shape) // int(size)))
    if f == 1:
        return a.astype(np.float32) if reduce == "mean" else a != 0
    h, w = a.shape[0] // f, a.shape[1] // f
    blocks = a[:h * f, :w * f].reshape(h, f, w, f)
    if reduce == "max":
        return (blocks != 0).any(axis=(1, 3))
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def grey_range(section, mask=None) -> tuple[float, float]:
    """The grey levels mapped to black and white: the 0.5 and 99.5 percentiles of
    ``section`` (of its pixels outside ``mask``, when given and not all of it)."""
    a = np.asarray(section, dtype=np.float32)
    if mask is not None and (~mask).any():
        a = a[~mask]
    lo, hi = (float(v) for v in np.percentile(a, (0.5, 99.5)))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def grey_panel(small, grey: tuple[float, float]) -> np.ndarray:
    """A shrunk section as palette indices (uint8), ``grey = (black, white)``
    (:func:`grey_range`)."""
    lo, hi = grey
    g = np.clip((np.asarray(small, np.float32) - lo) * ((_GREYS - 1) / (hi - lo)), 0,
                _GREYS - 1)
    return np.round(g).astype(np.uint8)


def outline_panel(panel: np.ndarray, mask_small) -> np.ndarray:
    """``panel`` with the outline of ``mask_small`` (its pixels that touch one outside it)
    in red."""
    from scipy import ndimage as ndi

    m = np.asarray(mask_small, bool)
    out = panel.copy()
    out[m & ~ndi.binary_erosion(m, border_value=0)] = _OUTLINE
    return out


def confidence_panel(panel: np.ndarray, confidence_small, mask_small=None) -> np.ndarray:
    """``panel`` (the repair) with the confidence in colour where it is below 1 (or, with
    ``mask_small``, on the damaged pixels): red where the repair is least sure, through
    yellow, to pale yellow where it is reliable."""
    c = np.clip(np.asarray(confidence_small, np.float32), 0, 1)
    where = c < 1 if mask_small is None else np.asarray(mask_small, bool)
    out = panel.copy()
    out[where] = _CONF0 + np.round(c[where] * (_CONFS - 1)).astype(np.uint8)
    return out


def contact_sheet(panels: list) -> bytes:
    """The PNG of ``panels`` (palette indices of one shape, from the functions above; None
    for an empty one: no section there) side by side, :data:`GAP` pixels apart."""
    from PIL import Image

    h, w = next(p.shape for p in panels if p is not None)
    sheet = np.full((h, len(panels) * w + (len(panels) - 1) * GAP), _WHITE, np.uint8)
    for i, p in enumerate(panels):
        x = i * (w + GAP)
        sheet[:, x:x + w] = _EMPTY if p is None else p
    image = Image.fromarray(sheet, mode="P")
    image.putpalette(palette())
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
