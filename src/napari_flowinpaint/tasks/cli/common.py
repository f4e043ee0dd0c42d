"""What every command shares: the progress bar, on stderr.

One helper for every command (:class:`ProgressBar`, a thin wrapper of tqdm): the library
functions report progress through ``progress(done, total)`` callbacks, and a bar is such a
callback. Messages printed while it runs go above it (:meth:`ProgressBar.write`).
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["ProgressBar", "add_absolute_argument", "add_finetune_arguments", "add_format_argument",
           "add_fold_margin_argument", "add_mode_argument", "add_parallel_arguments",
           "check_stack_outputs", "input_path"]

_FORMAT = ("{desc}: {n_fmt}/{total_fmt} {unit} {percentage:3.0f}%|{bar}| "
           "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")


class ProgressBar:
    """A progress bar on stderr, usable as a ``progress(done, total)`` callback.

    The bar appears on the first call (so an empty job draws nothing) and learns its total
    from it. Use it as a context manager so that it is closed on the way out.

    Parameters
    ----------
    desc : str
        What is being done, e.g. ``"repair"``.
    unit : str
        What is counted, plural, e.g. ``"slices"``.
    disable : bool, keyword-only
        Draw nothing (``--no-progress`` / ``--quiet``).
    """

    def __init__(self, desc: str, unit: str, *, disable: bool = False):
        self.desc, self.unit, self.disable = desc, unit, disable
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.disable:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr,
                             bar_format=_FORMAT, dynamic_ncols=True)
        elif self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def show(self, text: str) -> None:
        """Show ``text`` after the bar (e.g. the current losses)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def write(self, text: str) -> None:
        """Print a line on stderr without breaking the bar."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def add_format_argument(parser) -> None:
    """``--format``: how to read INPUT when its extension does not say (:func:`input_path`)."""
    from ..io.formats import FORMATS

    parser.add_argument("--format", default=None, choices=FORMATS,
                        help="format of INPUT when its extension does not tell it (default: "
                             "from the extension; a folder holds .tif or .png sections, "
                             "HDF5 takes 'FILE:/dataset'; a URL is read as n5, precomputed "
                             "or zarr)")


def input_path(args) -> str:
    """INPUT as the library reads it: ``FORMAT:INPUT`` when ``--format`` names a format its
    extension does not give (:func:`~napari_flowinpaint.tasks.io.formats.with_format`)."""
    from ..io.formats import with_format

    return with_format(args.input, args.format)


def check_stack_outputs(*paths) -> None:
    """Refuse, before any work, an output stack whose path names no format that can be
    written (``-o a.png``; :mod:`~napari_flowinpaint.tasks.io.targets`): the library would
    find out only once it writes that output, after the work before it (a whole detection,
    for ``auto``). None entries are skipped.

    Raises
    ------
    ValueError
        Naming the path and the extensions supported.
    """
    from ..io import stack_format

    for path in paths:
        if path is not None:
            stack_format(path, for_writing=True)


def add_parallel_arguments(parser) -> None:
    """``--workers`` and ``--scheduler``, for the commands that work section by section."""
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="local worker processes (default: the cores when the job is big "
                             "enough to gain from them, as many as the free memory holds at "
                             "1 GB each; else 1 = this process)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run on an existing dask.distributed cluster, e.g. "
                             "tcp://10.0.0.5:8786 (--workers is then ignored)")


def add_finetune_arguments(parser, *, what: str, iterations: int, mask_help: str) -> None:
    """The options ``finetune`` and ``finetune-detector`` share: the stack, ``-o`` (the
    ``what`` weights file), ``-m`` (``mask_help``), the starting weights, ``--iterations``
    (default ``iterations``), ``--spacing``, ``--held-out``, ``--seed``, ``--overwrite``."""
    parser.add_argument("stack", type=Path, help="TIFF, zarr or OME-Zarr stack (z, y, x)")
    parser.add_argument("-o", "--out", required=True, type=Path,
                        help=f"{what} file (.safetensors)")
    parser.add_argument("-m", "--mask", type=Path, default=None, help=mask_help)
    parser.add_argument("--weights", default=None, help="starting weights (default: bundled)")
    parser.add_argument("--iterations", type=int, default=iterations)
    parser.add_argument("--spacing", type=int, default=1,
                        help="neighbour distance (1 for serial sections, 3-5 for FIB-SEM)")
    parser.add_argument("--held-out", type=float, default=0.2,
                        help="fraction of sections kept aside to score before/after")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output weights file if it exists")


def add_absolute_argument(parser) -> None:
    """``--absolute``: detection not relative to what is normal for the stack."""
    parser.add_argument("--absolute", action="store_true",
                        help="report every region of --min-area or more, even the small ones "
                             "this stack's healthy sections show too (by default those are "
                             "taken as normal for the stack)")


def add_fold_margin_argument(parser) -> None:
    """``--no-fold-margin``: folds masked as the detector draws them, without their margin."""
    parser.add_argument("--no-fold-margin", action="store_true",
                        help="do not grow fold-like regions (long thin dark bands) over "
                             "their dark edges (by default they are, so that a repair "
                             "leaves no dark slivers along a fold)")


def add_mode_argument(parser) -> None:
    """``--mode``: the textured repair (default) or the faithful, least-error one."""
    from ...engine.names import REPAIR_MODES

    parser.add_argument("--mode", default="textured", choices=REPAIR_MODES,
                        help="textured (default): looks like tissue, with the grain of the "
                             "neighbours, and serves segmentation better; faithful: the "
                             "least-error repair (smooth), for measuring against a truth")
