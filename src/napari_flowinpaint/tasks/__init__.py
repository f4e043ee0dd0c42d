"""Layer 2, the tasks: stack repair, evaluation, the command line. No Qt, no napari."""

from .stack import damaged_z, find_neighbours, iter_repair_stack, repair_slice, repair_stack

__all__ = ["damaged_z", "find_neighbours", "iter_repair_stack", "repair_slice", "repair_stack"]
