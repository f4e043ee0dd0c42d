"""napari-flowinpaint: repair damaged sections of volume EM stacks.

FlowInpaint-style repair guided by the neighbouring sections, usable from Python, the
``napari-flowinpaint`` command line and a napari plugin. Importing this package imports
neither napari nor Qt, nor torch or OpenCV: the names below are loaded when first used.

Mask convention: True (or a nonzero label) marks a damaged pixel.
"""

import os as _os

import lazy_loader as _lazy

# OpenMP threads (torch's) that wait by spinning take the cores from each other and from the
# rest of a busy machine: with two other busy processes on 2 cores, a 1024^2 repair took
# 10.6 s with spinning waits and 3.0 s with passive ones (benchmarks/bench_repair.py --load).
# Read by the OpenMP runtime when torch loads, so it is set here, before any torch import;
# a value the user set is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__getattr__, __dir__, _names = _lazy.attach(
    __name__,
    submodules=["engine", "tasks"],
    submod_attrs={
        "engine": ["FlowInpainter", "RepairReport", "initial_reference"],
        "tasks": ["damaged_slices", "detect_damage", "repair_slice", "repair_stack",
                  "simulate_damage"],
    },
)
__all__ = [*_names, "__version__"]
