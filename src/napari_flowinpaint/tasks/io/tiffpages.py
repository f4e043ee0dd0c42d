"""TIFF checks and the TIFFs whose sections were written one page at a time, for
:func:`~napari_flowinpaint.tasks.io.read_stack`.

A TIFF written page by page (tifffile's ``TiffWriter.write`` once per section, without
``contiguous``; some acquisition and export tools do the same) holds each page as a series
of its own, and tifffile reads the first series alone: a single 2-D image. Its pages are
read here as the stack they form (:func:`page_stack`), and pages of different sizes or
types are refused with a message that names them (:class:`PagesDiffer`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .sections import SectionFiles

__all__ = ["PagesDiffer", "TiffPages", "check_complete", "page_stack"]


class PagesDiffer(ValueError):
    """The pages of a TIFF that should form a stack differ in size or type."""


def check_complete(tif, size: int) -> None:
    """Refuse a TIFF cut short (a copy or download that stopped): tifffile would read the
    pages that are left and say nothing.

    Raises
    ------
    ValueError
        Naming what is missing (the images the header announces, or the page cut short).
    """
    expected = (tif.imagej_metadata or {}).get("images")
    pages = len(tif.pages)
    if expected is not None and int(expected) > pages:
        raise ValueError(f"it holds {pages} of the {int(expected)} images its header "
                         "announces: the file is truncated")
    for page in tif.pages:
        if 0 in page.shape:
            continue  # nothing stored; refused later for its empty axis
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)]
        if ends and max(ends) > size:
            raise ValueError(f"page {page.index} ends at byte {max(ends)} but the file has "
                             f"{size} bytes: the file is truncated")


class TiffPages(SectionFiles):
    """The pages of a TIFF (written one at a time) as a lazy (z, y, x) stack: indexing
    (``stack[z]``, ``stack[z0:z1, y0:y1]``) reads only the pages asked for.

    Parameters
    ----------
    path : Path
    pages : list of int
        The index in the file of each section's page, in z order.
    shape : (y, x) of every page.
    dtype : of every page.
    name : str, keyword-only
        How the stack is called in error messages.
    """

    def __init__(self, path, pages, shape, dtype, *, name: str = "stack"):
        self.pages = [int(i) for i in pages]
        super(SectionFiles, self).__init__(path, name, (len(self.pages), *shape), dtype)

    def read_section(self, z: int) -> np.ndarray:
        """Section ``z`` (0 <= z < len), read from its page."""
        import tifffile

        with tifffile.TiffFile(self.path) as tif:
            return np.asarray(tif.pages[self.pages[z]].asarray(), dtype=self.dtype)


def page_stack(tif, path, name: str, *, small: int):
    """The stack formed by the pages of the open TIFF ``tif`` when each of them is a series
    of its own (written page by page): in memory when it takes at most ``small`` bytes, else
    a lazy :class:`TiffPages`. None when the file's first series is the stack (the usual
    case: an ImageJ, OME or contiguous TIFF), or when it holds one page.

    Raises
    ------
    PagesDiffer
        When the pages differ in size or type (a stack's sections must not).
    """
    series = tif.series
    if len(series) < 2 or any(len(s.pages) != 1 for s in series):
        return None
    first = (tuple(series[0].shape), np.dtype(series[0].dtype))
    for i, s in enumerate(series):
        if (tuple(s.shape), np.dtype(s.dtype)) != first or len(s.shape) != 2:
            what = " x ".join(map(str, s.shape))
            raise PagesDiffer(
                f"{name} {str(path)!r} holds {len(series)} pages written one by one that "
                f"differ: page {i} is {what} {np.dtype(s.dtype)}, but page 0 is "
                f"{' x '.join(map(str, first[0]))} {first[1]}. The pages of a stack must all "
                "be grey-level images of one size and type: crop or pad them to one size "
                "(e.g. Fiji: Image > Adjust > Canvas Size), or remove the pages that are not "
                "sections.")
    pages = [s.pages[0].index for s in series]
    shape, dtype = first
    if len(pages) * int(np.prod(shape)) * dtype.itemsize <= small:
        return np.stack([s.asarray() for s in series]).astype(dtype, copy=False)
    return TiffPages(Path(path), pages, shape, dtype, name=name)
