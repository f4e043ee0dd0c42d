"""Layer 2, the tasks: stack repair, damage simulation and detection, training, evaluation,
stack I/O and the command line. No Qt, no napari.

One subpackage or module per concern:

* :mod:`.io`: reading and writing stacks (TIFF, zarr), the bundled sample;
* :mod:`.repair`: choosing neighbours and repairing slices, stacks and stack files;
* :mod:`.simulation`: random masks and realistic simulated damage;
* :mod:`.detection`: automatic damage detection;
* :mod:`.training`: training and fine-tuning the networks and the detector;
* :mod:`.evaluation`: metrics, baselines, the repair and detection harnesses, the demo;
* :mod:`.cli`: the ``napari-flowinpaint`` command line (argument parsing and printing).

Names are loaded lazily: ``import napari_flowinpaint.tasks`` imports neither torch nor
OpenCV.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["cli", "detection", "evaluation", "io", "repair", "simulation", "training"],
    submod_attrs={
        "detection": ["damage_scores", "damaged_slices", "detect_damage",
                      "iter_detect_damage"],
        "repair": ["damaged_z", "find_neighbours", "iter_repair_stack", "repair_slice",
                   "repair_stack"],
        "simulation": ["DAMAGE_KINDS", "simulate_damage"],
    },
)
