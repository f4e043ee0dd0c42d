"""Brightness and contrast flicker between sections is not damage: the neighbour matching,
the stack's level, and detection with detector weights trained on levelled input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_flowinpaint.engine.weights import bundled_detector_path
from napari_flowinpaint.tasks.detection import detect_damage, detector_input, stack_scale
from napari_flowinpaint.tasks.detection.cues import level_section, match_neighbour, stack_level
from napari_flowinpaint.tasks.simulation import simulate_damage

SAMPLE = (Path(__file__).resolve().parents[1] / "src" / "napari_flowinpaint" / "data"
          / "fibsem_medulla_sample.tif")


@pytest.fixture(scope="module")
def sample():
    return tifffile.imread(SAMPLE).astype(np.float32)


def flicker(stack, seed=0, amount=0.25):
    """Each section with its own contrast gain and brightness factor in [1 - amount,
    1 + amount] (float: nothing saturates)."""
    rng = np.random.default_rng(seed)
    out = np.empty(stack.shape, np.float32)
    for z, sec in enumerate(stack):
        gain, bright = rng.uniform(1 - amount, 1 + amount, 2)
        out[z] = ((sec - sec.mean()) * gain + sec.mean()) * bright
    return out


@pytest.mark.parametrize("gain, bright", [(0.75, 1.25), (1.25, 0.75), (1.0, 1.2)])
def test_matching_undoes_flicker_and_ignores_the_damage(sample, gain, bright):
    sec, nb = sample[6], sample[5]
    span = float(np.ptp(sample))
    flickered = ((nb - nb.mean()) * gain + nb.mean()) * bright
    plain = match_neighbour(nb, sec)
    matched = match_neighbour(flickered, sec)
    assert np.abs(matched - plain).mean() < 0.01 * span
    # a white hole in the section is a minority of its blocks: the match hardly moves
    holed, _ = simulate_damage(sec, "hole", 4)
    assert np.abs(match_neighbour(flickered, holed) - plain).mean() < 0.03 * span
    assert match_neighbour(None, sec) is None


def test_levelling_brings_every_section_to_the_stacks_level(sample):
    flick = flicker(sample)
    level = stack_level(flick)
    levelled = [level_section(s, level) for s in flick]
    meds = [float(np.median(s)) for s in levelled]
    devs = [float(np.median(np.abs(s - np.median(s)))) for s in levelled]
    assert np.ptp(meds) < 0.02 * np.ptp(sample) and np.ptp(devs) < 0.05 * level[1] + 1e-3
    # measured on its neighbours ("like"), a section's damage does not move its level
    damaged, _ = simulate_damage(flick[6], "fold", 2)
    a = level_section(damaged, level, like=(flick[5], flick[7]))
    b = level_section(flick[6], level, like=(flick[5], flick[7]))
    untouched = damaged == flick[6]
    np.testing.assert_allclose(a[untouched], b[untouched], rtol=1e-5, atol=1e-3)


def test_the_levelled_input_is_the_same_with_and_without_flicker(sample):
    """What a detector trained on levelled input sees of a section (its neighbours matched
    to it, all three at the stack's level) hardly changes when every section flickers."""
    def seen(stack, z):
        level = stack_level(stack)
        prev, sec, nxt = stack[z - 1], stack[z], stack[z + 1]
        like = (match_neighbour(prev, sec), match_neighbour(nxt, sec))
        trio = [level_section(x, level, like=like) for x in (like[0], sec, like[1])]
        return detector_input(*trio, stack_scale(stack, level))

    flick = flicker(sample, seed=3)
    for z in (3, 8, 12):
        a, b = seen(sample, z), seen(flick, z)
        assert np.abs(a - b).mean() < 0.02, z


@pytest.mark.skipif(bundled_detector_path() is None, reason="no bundled detector weights")
def test_the_bundled_detector_takes_flicker_in_its_stride(sample):
    """The bundled detector works on levelled input: with every section flickering by up to
    +-25 %, the damaged section's mask is the same, and no clean section gets a region
    (the README gives the validation numbers)."""
    from napari_flowinpaint.tasks.detection.evidence import _takes_levelled

    assert _takes_levelled(None)
    stack = sample.copy()
    stack[8], truth = simulate_damage(sample[8], "fold", 1)
    plain = detect_damage(stack)
    assert [z for z in range(len(stack)) if plain[z].any()] == [8]
    flagged = 0
    for seed in range(3):
        flick = detect_damage(flicker(stack, seed=seed))
        same = np.count_nonzero(flick[8] & plain[8]) / np.count_nonzero(flick[8] | plain[8])
        assert same > 0.9, seed
        flagged += sum(bool(flick[z].any()) for z in range(len(stack)) if z != 8)
    assert flagged == 0  # of 45 clean sections judged (5 before the neighbours were matched
    # ahead of the check for their holes)


@pytest.mark.skipif(bundled_detector_path() is None, reason="no bundled detector weights")
@pytest.mark.parametrize("z", [3, 8, 12])
def test_a_neighbour_imaged_much_brighter_is_not_taken_for_holes(sample, z):
    """One neighbour 25 % brighter, the other 22 % darker (seen on FIB-SEM under flicker):
    matched to the section first, the bright one is not mistaken for blank film (which
    patched it with the dark one and flagged the whole section)."""
    part = np.stack([sample[z - 1] * 1.25, sample[z], sample[z + 1] * 0.78])
    assert not detect_damage(part, 1).any()
    # a real hole in the brighter neighbour is still left out: not the section's damage
    holed = part.copy()
    holed[0], _ = simulate_damage(holed[0], "hole", 3)
    assert not detect_damage(holed, 1).any()
