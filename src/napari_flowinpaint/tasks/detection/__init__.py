"""Automatic detection of damaged regions in a section stack.

Each section is judged together with its nearest usable neighbours above and below by a
small learned network (:class:`~napari_flowinpaint.engine.nets.DamageDetectorNet`, bundled
as ``weights/detector-cpu.safetensors``) trained on simulated damage of real stacks
(:func:`~napari_flowinpaint.tasks.simulation.simulate_damage`: blank holes, missing sections,
cracks, folds, stain precipitates, sediment, blur). It sees what the section shows itself
and how it disagrees with its neighbours, so it works with two, one or no neighbours.
A blank (structureless) section is always reported as wholly missing.

Modules: :mod:`.cues` (what the network and the rules look at), :mod:`.postprocess` (from
probabilities to a mask), :mod:`.detector` (the driver over slices and stacks).

Mask convention of the package: ``True`` marks a *damaged* pixel.
"""

from .cues import (
    bright_blank,
    detector_input,
    is_blank,
    label_regions,
    stack_scale,
    without_holes,
)
from .detector import (
    damage_probability,
    damage_scores,
    damaged_slices,
    detect_damage,
    iter_detect_damage,
    slice_report,
)
from .postprocess import check_options, decide_mask, refine_mask

__all__ = ["bright_blank", "check_options", "damage_probability", "damage_scores",
           "damaged_slices", "decide_mask", "detect_damage",
           "detector_input", "is_blank", "iter_detect_damage", "label_regions",
           "refine_mask", "slice_report", "stack_scale", "without_holes"]
