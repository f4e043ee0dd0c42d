"""Layer 1, the engine: numpy + torch (+ OpenCV), no Qt, no napari.

Optical flow and warping, the initial reference, the learned networks (``nets``), their
weights (safetensors), safe file output (``files``) and the :class:`FlowInpainter` object.

Names are loaded lazily (as scikit-image does): ``from napari_flowinpaint.engine import
as_slice`` imports neither torch nor OpenCV; ``FlowInpainter`` does, when first used.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["confidence", "files", "flow", "inpainter", "names", "nets", "pipeline",
                "reference", "texture", "tiles", "weights"],
    submod_attrs={
        "_checks": ["SUPPORTED_DTYPES", "as_mask", "as_slice", "cast_to", "check_same_shape",
                    "section_index"],
        "_intensity": ["IntensityScale", "match_intensity"],
        "confidence": ["repair_confidence"],
        "files": ["atomic_output", "check_output_path", "write_text"],
        "flow": ["Warp", "optical_flow", "warp", "warp_numpy"],
        "names": ["FLOW_METHODS", "REPAIR_MODES", "STAGES"],
        "inpainter": ["FlowInpainter", "RepairReport", "resolve_device"],
        "tiles": ["damage_box", "damage_boxes"],
        "pipeline": ["UnitInputs", "learned_stages", "prepare_inputs"],
        "reference": ["initial_reference", "initial_reference_unit", "intermediate_flows"],
        "texture": ["carry_grain", "check_mode", "detail_correlation", "grain_std",
                    "grain_strength"],
        "weights": ["LearnedWeights", "bundled_detector_path", "bundled_weights_path",
                    "load_detector", "load_weights", "save_detector", "save_weights"],
    },
)
