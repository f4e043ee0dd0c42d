"""napari-flowinpaint: repair damaged sections of volume EM stacks.

FlowInpaint-style repair guided by the neighbouring sections, usable from Python, the
``napari-flowinpaint`` command line and a napari plugin. Importing this package imports
neither napari nor Qt, nor torch or OpenCV: the names below are loaded when first used.

Mask convention: True (or a nonzero label) marks a damaged pixel.
"""

import os as _os

import lazy_loader as _lazy

# OpenMP threads (torch's) that wait by spinning take the cores from each other and from the
# rest of a busy machine. A 1024^2 repair at 30 % on 2 cores, with two busy processes beside it
# (benchmarks/bench_repair.py --load 2): 9.0 s with spinning waits, 4.8 s with passive ones
# (2048^2: 33.8 s and 10.4 s); idle, passive waits cost 2.7 s against 2.2 s (8.1 against
# 6.2 s). Read by the OpenMP runtime when torch loads, so it is set here, before any torch
# import; a value the user set is kept (OMP_WAIT_POLICY=ACTIVE for a machine kept idle).
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
