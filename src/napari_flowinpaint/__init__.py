"""napari-flowinpaint: repair damaged sections of volume EM stacks.

FlowInpaint-style repair guided by the neighbouring sections, usable from Python, the
``napari-flowinpaint`` command line and a napari plugin. Importing this package does not
import napari or Qt.

Mask convention: True (or a nonzero label) marks a damaged pixel.
"""

from .engine import FlowInpainter, RepairReport, initial_reference
from .tasks import damaged_slices, detect_damage, repair_slice, repair_stack, simulate_damage

__version__ = "0.1.0"

__all__ = ["FlowInpainter", "RepairReport", "damaged_slices", "detect_damage",
           "initial_reference", "repair_slice", "repair_stack", "simulate_damage",
           "__version__"]
