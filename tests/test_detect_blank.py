"""The blank-pixel rule of the detector (issue 29): a bright region the network is not sure
of is kept only when it is mostly white or flat (a film hole, a crack), not when it is
bright cytoplasm that keeps its texture."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_flowinpaint.engine.weights import bundled_detector_path
from napari_flowinpaint.tasks.detection import decide_mask, detect_damage, stack_scale
from napari_flowinpaint.tasks.detection.cues import blank_pixels
from napari_flowinpaint.tasks.simulation import simulate_damage

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "napari_flowinpaint" / "data" / "fibsem_medulla_sample.tif"
ISBI = ROOT.parent / "shared" / "data" / "isbi2012_test" / "raw.tif"
needs_detector = pytest.mark.skipif(bundled_detector_path() is None,
                                    reason="no bundled detector weights in weights/")


def _scene():
    """A lukewarm bright region (max p 0.8, no sure pixel) and a sure one, both bright."""
    p = np.zeros((80, 80), np.float32)
    bright = np.zeros((80, 80), bool)
    p[10:30, 10:30] = 0.8
    bright[10:30, 10:30] = True
    p[50:70, 50:70] = 0.99
    bright[50:70, 50:70] = True
    return p, bright


@pytest.mark.parametrize("share,kept", [(0.3, False), (0.45, False), (0.55, True), (0.9, True)])
def test_an_unsure_bright_region_must_be_mostly_blank(share, kept):
    p, bright = _scene()
    blank = np.zeros_like(bright)
    rows = round(20 * share)
    blank[10:10 + rows, 10:30] = True  # that share of the unsure region is white or flat
    m = decide_mask(p, bright, blank=blank)
    assert m[10:30, 10:30].all() == kept and m[10:30, 10:30].any() == kept
    assert m[50:70, 50:70].all()                           # sure: kept, blank or not
    assert decide_mask(p, bright)[10:30, 10:30].all()      # no blank map: as before
    assert decide_mask(p, bright, blank=blank, alone=True)[10:30, 10:30].all()  # alone: kept
    assert decide_mask(p, bright, blank=blank, blank_share=share - 0.1)[10:30, 10:30].all()


def test_blank_pixels_cover_holes_and_cracks_not_tissue():
    sample = tifffile.imread(SAMPLE)
    scale = stack_scale(sample)
    for kind, least in (("hole", 0.75), ("crack", 0.55)):
        for seed in range(4):
            damaged, truth = simulate_damage(sample[7], kind, seed)
            blank = blank_pixels(damaged, scale)
            assert blank[truth].mean() >= least, (kind, seed)
            assert blank[~truth].mean() <= 0.25, (kind, seed)
    assert 0.08 <= blank_pixels(sample[7], scale).mean() <= 0.2  # tissue: mostly textured


@needs_detector
@pytest.mark.skipif(not ISBI.is_file(), reason="../shared/data/isbi2012_test is not available")
@pytest.mark.parametrize("z,least", [(4, 0), (6, 0), (15, 300)])
def test_isbi_bright_cytoplasm_is_not_flagged_the_real_hole_is(z, least):
    """isbi2012_test: sections 4 and 6 hold bright cytoplasm patches (150-190 px, grey
    213-221 of 255, 8-14 % saturated) that were flagged; section 15 a real white blob (384 px,
    246 saturated). Judged between two neighbours on each side, as evaluate-detection does."""
    stack = tifffile.imread(ISBI)
    part = stack[max(0, z - 2):z + 3]
    found = detect_damage(part, z - max(0, z - 2), relative=False)
    if least == 0:
        assert not found.any()
    else:
        assert found.sum() >= least
        white = np.zeros_like(found)
        white[312:338, 72:96] = stack[z][312:338, 72:96] >= 250  # the blob's white pixels
        assert found[white].mean() >= 0.9
