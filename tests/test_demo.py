import numpy as np
import pytest
import tifffile

from napari_flowinpaint.tasks import cli
from napari_flowinpaint.tasks.evaluation import demo
from napari_flowinpaint.tasks.io import (
    SAMPLE_INFO,
    load_sample,
    read_stack,
    read_voxel_size,
    sample_path,
)

FLOW_ROW = "**FlowInpaint (guided_inpainting, textured)**"
FAITHFUL_ROW = "FlowInpaint (guided_inpainting, faithful)"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One run of ``napari-flowinpaint demo`` through the CLI, keeping what it measured."""
    out = tmp_path_factory.mktemp("demo")
    results = []
    real = demo.run_demo
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo, "run_demo", lambda *a, **k: results.append(real(*a, **k)))
        code = cli.main(["demo", "-o", str(out / "d"), "--seed", "0"])
    return code, results[0], out / "d"


def test_demo_writes_its_files(demo_run, capsys):
    code, result, folder = demo_run
    assert code == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["damaged.tif", "demo.png", "mask.tif", "metrics.md", "repaired.tif"]
    truth, info = load_sample()
    damaged, mask, repaired = (read_stack(folder / f"{n}.tif")
                               for n in ("damaged", "mask", "repaired"))
    z = result["z"]
    assert z == truth.shape[0] // 2
    assert damaged.shape == mask.shape == repaired.shape == truth.shape
    assert repaired.dtype == truth.dtype == np.uint8
    assert read_voxel_size(folder / "repaired.tif") == pytest.approx(info["voxel_size"])
    m = mask[z] > 0
    assert mask.sum() == m.sum() and 0.08 < m.mean() < 0.2  # one damaged section
    assert (damaged[z][m] == 255).all()
    np.testing.assert_array_equal(np.delete(repaired, z, 0), np.delete(truth, z, 0))
    np.testing.assert_array_equal(repaired[z][~m], truth[z][~m])
    png = (folder / "demo.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 300_000
    table = (folder / "metrics.md").read_text()
    for row in ("damaged (filled white)", "average of neighbours", "Telea (OpenCV)", FLOW_ROW,
                FAITHFUL_ROW, "grain in mask", "CC BY 3.0"):
        assert row in table


def test_demo_repair_beats_the_damage_by_a_margin(demo_run):
    _, result, _ = demo_run
    s = result["scores"]
    flow, damaged = s[FLOW_ROW], s["damaged (filled white)"]
    # measured (seed 0): damaged 5.9 dB in the hole, repaired 27.0 dB; SSIM 0.75 -> 0.96
    assert damaged["psnr_hole"] < 8 and flow["psnr_hole"] > 25
    assert flow["psnr"] > damaged["psnr"] + 14
    assert flow["ssim"] > damaged["ssim"] + 0.12
    assert flow["mae_hole"] < 0.15 * damaged["mae_hole"]
    # the learned stages beat the best simple baseline (measured: 27.0 vs 22.7 dB)
    best = max(s["average of neighbours"]["psnr_hole"], s["Telea (OpenCV)"]["psnr_hole"])
    assert flow["psnr_hole"] > best + 2.0
    assert result["method"] == "guided_inpainting"
    assert result["seconds"] < 30


def test_demo_mask_is_seeded_and_realistic():
    a = demo.demo_mask((192, 192), seed=3)
    assert a.dtype == bool and a.shape == (192, 192)
    np.testing.assert_array_equal(a, demo.demo_mask((192, 192), seed=3))
    assert not np.array_equal(a, demo.demo_mask((192, 192), seed=4))
    assert 0.08 < a.mean() <= 0.13


def test_load_sample():
    stack, info = load_sample()
    assert stack.shape == (16, 192, 192) and stack.dtype == np.uint8
    assert stack.std() > 20  # real EM texture, not blank
    assert info["voxel_size"] == (40.0, 10.0, 10.0) and info["voxel_unit"] == "nm"
    assert "CC BY 3.0" in info["attribution"] and "Parag" in info["attribution"]
    assert info["name"] == SAMPLE_INFO["name"]
    info["name"] = "changed"  # a copy: the module constant is not modified
    assert SAMPLE_INFO["name"] == "fibsem_medulla_sample"
    path = sample_path()
    assert path.is_file() and path.stat().st_size < 600_000
    assert read_voxel_size(path) == pytest.approx((40.0, 10.0, 10.0))
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert "CC BY 3.0" in tif.imagej_metadata["Info"]
    attribution = (path.parent / "ATTRIBUTION.md").read_text()
    for needed in ("CC BY 3.0", "Parag", "e0125825", "neuroproof_examples", "modified",
                   "cropped"):
        assert needed in attribution
