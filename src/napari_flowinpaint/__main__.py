"""``python -m napari_flowinpaint``: the command line.

Guarded, because dask's worker processes start by importing the parent's main module:
without the guard each worker would run the command again.
"""

from .tasks.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
