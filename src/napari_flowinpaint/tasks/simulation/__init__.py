"""Simulated damage, to train and judge the networks: random masks (:mod:`.masks`) and
realistic section damage of every kind (:mod:`.damage`)."""

from .damage import DAMAGE_KINDS, continuing_structure, noise_level, simulate_damage
from .masks import MASK_KINDS, apply_damage, random_mask, white_level

__all__ = ["DAMAGE_KINDS", "MASK_KINDS", "apply_damage", "continuing_structure",
           "noise_level", "random_mask", "simulate_damage", "white_level"]
