"""Layer 1, the engine: numpy + torch (+ OpenCV), no Qt, no napari.

Optical flow and warping, the initial reference, and the :class:`FlowInpainter` object.
"""

from ._checks import SUPPORTED_DTYPES, as_mask, as_slice, check_same_shape
from ._intensity import IntensityScale, match_intensity
from .flow import FLOW_METHODS, Warp, optical_flow, warp, warp_numpy
from .inpainter import FlowInpainter, RepairReport, damage_box, resolve_device
from .reference import initial_reference, initial_reference_unit, intermediate_flows

__all__ = [
    "FLOW_METHODS",
    "SUPPORTED_DTYPES",
    "FlowInpainter",
    "IntensityScale",
    "RepairReport",
    "Warp",
    "as_mask",
    "as_slice",
    "check_same_shape",
    "damage_box",
    "initial_reference",
    "initial_reference_unit",
    "intermediate_flows",
    "match_intensity",
    "optical_flow",
    "resolve_device",
    "warp",
    "warp_numpy",
]
