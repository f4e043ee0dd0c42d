"""Layer 1, the engine: numpy + torch (+ OpenCV), no Qt, no napari.

Optical flow and warping, the initial reference, the learned networks (``nets``), their
weights (safetensors) and the :class:`FlowInpainter` object.
"""

from ._checks import SUPPORTED_DTYPES, as_mask, as_slice, check_same_shape
from ._intensity import IntensityScale, match_intensity
from .flow import FLOW_METHODS, Warp, optical_flow, warp, warp_numpy
from .inpainter import FlowInpainter, RepairReport, damage_box, damage_boxes, resolve_device
from .pipeline import STAGES, UnitInputs, learned_stages, prepare_inputs
from .reference import initial_reference, initial_reference_unit, intermediate_flows
from .weights import (
    LearnedWeights,
    bundled_detector_path,
    bundled_weights_path,
    load_detector,
    load_weights,
    save_detector,
    save_weights,
)

__all__ = [
    "FLOW_METHODS",
    "STAGES",
    "SUPPORTED_DTYPES",
    "FlowInpainter",
    "IntensityScale",
    "LearnedWeights",
    "RepairReport",
    "UnitInputs",
    "Warp",
    "as_mask",
    "as_slice",
    "bundled_detector_path",
    "bundled_weights_path",
    "check_same_shape",
    "damage_box",
    "damage_boxes",
    "initial_reference",
    "initial_reference_unit",
    "intermediate_flows",
    "learned_stages",
    "load_detector",
    "load_weights",
    "match_intensity",
    "optical_flow",
    "prepare_inputs",
    "resolve_device",
    "save_detector",
    "save_weights",
    "warp",
    "warp_numpy",
]
