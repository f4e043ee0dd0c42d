"""The engine's choices by name, importable without torch or OpenCV (for command-line
options and checks made before any heavy import)."""

__all__ = ["FLOW_METHODS", "REPAIR_MODES", "STAGES", "STAGE_LABELS"]

#: Optical-flow back-ends: OpenCV DIS (default, fast and accurate on EM) and Farneback.
FLOW_METHODS = ("dis", "farneback")

#: The method's stages, in order; an engine runs up to the one it is given.
STAGES = ("initial_reference", "refined_reference", "guided_inpainting")

#: What the stages are called where users read them (the napari widgets' status lines).
STAGE_LABELS = {
    "initial_reference": "optical flow only",
    "refined_reference": "optical flow and the learned flow",
    "guided_inpainting": "FlowInpaint",
}

#: The repair modes of the full pipeline: ``"textured"`` (the generator's structure with the
#: grain of real tissue) and ``"faithful"`` (the generator's output: the least-error repair).
REPAIR_MODES = ("textured", "faithful")
