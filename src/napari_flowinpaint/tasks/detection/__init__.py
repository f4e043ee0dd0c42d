"""Automatic detection of damaged regions in a section stack.

Each section is judged together with its nearest usable neighbours above and below by a
small learned network (:class:`~napari_flowinpaint.engine.nets.DamageDetectorNet`, bundled
as ``weights/detector-cpu.safetensors``) trained on simulated damage of real stacks
(:func:`~napari_flowinpaint.tasks.simulation.simulate_damage`: blank holes, missing sections,
cracks, folds, stain precipitates, sediment, blur). It sees what the section shows itself
and how it disagrees with its neighbours, so it works with two, one or no neighbours.
A blank (structureless) section is always reported as wholly missing.

Modules: :mod:`.levels` (the stack's grey scale and level, flicker taken out), :mod:`.cues`
(what the network and the rules look at), :mod:`.evidence` (the network's probability and
the cues for one section), :mod:`.postprocess` (from probabilities to a mask; :mod:`.folds`
gives folds a margin;
:mod:`.thinfolds` finds thin folds at full resolution),
:mod:`.stackpass` (one section of a stack judged with its neighbours), :mod:`.threads`
(two sections judged at once) and :mod:`.detector` (the driver over slices and stacks).

Mask convention of the package: ``True`` marks a *damaged* pixel.
"""

import lazy_loader as _lazy

# lazily: the cues and the post-processing need no torch; the detector network does
__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["cues", "detector", "evidence", "folds", "levels", "postprocess",
                "stackpass", "thinfolds", "threads"],
    submod_attrs={
        "cues": ["bright_blank", "detector_input", "is_blank", "label_regions", "stack_scale",
                 "without_holes"],
        "detector": ["damage_scores", "damaged_slices", "detect_damage", "iter_detect_damage",
                     "iter_normal_region_area", "known_normal_area", "normal_region_area",
                     "remember_normal_area", "slice_report"],
        "evidence": ["damage_probability", "section_evidence", "stack_reference"],
        "folds": ["fold_regions", "grow_folds"],
        "thinfolds": ["thin_folds"],
        "postprocess": ["check_options", "decide_mask", "refine_mask"],
    },
)
