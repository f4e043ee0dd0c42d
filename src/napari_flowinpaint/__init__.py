"""napari-flowinpaint: repair damaged sections of volume EM stacks.

FlowInpaint-style repair guided by the neighbouring sections, usable from Python, the
``napari-flowinpaint`` command line and a napari plugin. Importing this package imports
neither napari nor Qt, nor torch or OpenCV: the names below are loaded when first used.

Mask convention: True (or a nonzero label) marks a damaged pixel.
"""

import lazy_loader as _lazy

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
