"""Layer 2, the tasks: stack repair, damage detection, evaluation, training, the command line.
No Qt, no napari."""

from .damage import DAMAGE_KINDS, simulate_damage
from .detect import damage_scores, damaged_slices, detect_damage, iter_detect_damage
from .stack import damaged_z, find_neighbours, iter_repair_stack, repair_slice, repair_stack

__all__ = ["DAMAGE_KINDS", "damage_scores", "damaged_slices", "detect_damage",
           "iter_detect_damage", "simulate_damage", "damaged_z", "find_neighbours",
           "iter_repair_stack", "repair_slice", "repair_stack"]
