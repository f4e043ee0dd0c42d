"""The confidence map of a repair: shape and range, the API's return order, its calibration
on the bundled sample, and the ``repair --confidence`` output (every format, resumed)."""

import numpy as np
import pytest
from _cli import command
from _synth import moving_stack
from scipy.stats import spearmanr

from napari_flowinpaint.engine import FlowInpainter, repair_confidence
from napari_flowinpaint.tasks.io import read_stack, write_stack
from napari_flowinpaint.tasks.io.sample import load_sample
from napari_flowinpaint.tasks.repair import repair_slice
from napari_flowinpaint.tasks.simulation import apply_damage, random_mask
from napari_flowinpaint.tasks.volume import repair_to_file


@pytest.fixture(scope="module")
def engine():
    return FlowInpainter(device="cpu")


@pytest.fixture(scope="module")
def sample():
    return load_sample()[0]


def test_confidence_is_a_float_map_in_unit_range_and_one_outside_the_mask(engine, sample):
    mask = np.zeros(sample.shape[1:], bool)
    mask[40:110, 30:120] = True
    damaged = apply_damage(sample[5], mask)
    plain = engine.inpaint(sample[4], damaged, sample[6], mask)
    out, conf = engine.inpaint(sample[4], damaged, sample[6], mask, return_confidence=True)
    out2, conf2, report = engine.inpaint(sample[4], damaged, sample[6], mask,
                                         return_confidence=True, return_report=True)
    np.testing.assert_array_equal(out, plain)
    np.testing.assert_array_equal(out2, plain)
    np.testing.assert_array_equal(conf, conf2)
    assert conf.dtype == np.float32 and conf.shape == mask.shape
    assert (conf[~mask] == 1).all()
    assert 0 < conf[mask].min() and conf[mask].max() < 1
    assert report.confidence == pytest.approx(float(conf[mask].mean()))
    # the middle of the hole is trusted less than its rim
    assert conf[75, 75] < conf[41, 75]
    *_, report = engine.inpaint(sample[4], damaged, sample[6], mask, return_report=True)
    assert report.confidence is None


def test_one_neighbour_and_a_missing_section_get_a_confidence(engine, sample):
    mask = np.zeros(sample.shape[1:], bool)
    mask[50:100, 50:100] = True
    _, one = engine.inpaint(None, apply_damage(sample[5], mask), sample[6], mask,
                            return_confidence=True)
    full = np.ones(sample.shape[1:], bool)
    _, missing = engine.inpaint(sample[4], apply_damage(sample[5], full), sample[6], full,
                                return_confidence=True)
    for conf in (one, missing):
        assert np.isfinite(conf).all() and 0 < conf.min() <= conf.max() <= 1


def test_repair_confidence_checks_its_shapes():
    a = np.zeros((8, 8), np.float32)
    with pytest.raises(ValueError, match="mask has shape"):
        repair_confidence(a, a, a, np.zeros((4, 4), bool))


def test_repair_slice_passes_the_confidence_through(engine, sample):
    mask = np.zeros(sample.shape[1:], bool)
    mask[20:60, 20:60] = True
    out, conf = repair_slice(sample, 5, mask, inpainter=engine, return_confidence=True)
    out2, conf2, report = repair_slice(sample, 5, mask, inpainter=engine,
                                       return_confidence=True, return_report=True)
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(conf, conf2)
    assert (conf[~mask] == 1).all() and report.confidence is not None


def test_confidence_is_calibrated_on_the_sample(engine, sample):
    """Pixels: the least trusted fifth holds clearly more error than the rest. Samples: the
    mean confidence ranks them like their PSNR in the hole (the README's table gives the
    figures on the validation parts)."""
    errors, confs, psnrs, means = [], [], [], []
    for ri, ratio in enumerate((0.1, 0.3, 0.5)):
        for si in range(8):
            rng = np.random.default_rng([ri, si])
            z = int(rng.integers(1, sample.shape[0] - 1))
            y0, x0 = rng.integers(0, sample.shape[1] - 128 + 1, 2)
            win = (slice(y0, y0 + 128), slice(x0, x0 + 128))
            mask = random_mask((128, 128), ratio, rng)
            truth = sample[z][win]
            out, conf = engine.inpaint(sample[z - 1][win], apply_damage(truth, mask),
                                       sample[z + 1][win], mask, return_confidence=True)
            err = np.abs(out.astype(np.float64) - truth)[mask] / 255
            errors.append(err)
            confs.append(conf[mask])
            psnrs.append(-10 * np.log10(np.mean(err ** 2)))
            means.append(conf[mask].mean())
    e, c = np.concatenate(errors), np.concatenate(confs)
    low = c <= np.quantile(c, 0.2)
    assert e[low].mean() >= 1.5 * e[~low].mean()  # 1.58 measured
    assert spearmanr(means, psnrs)[0] >= 0.5  # 0.65 measured


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("conf")
    stack = moving_stack(8, (80, 80), dtype=np.uint8)
    masks = np.zeros(stack.shape, np.uint8)
    for z in (2, 3, 6):
        masks[z, 10 + z:50, 20:60] = 1
    write_stack(d / "in.zarr", np.where(masks > 0, 255, stack).astype(np.uint8))
    write_stack(d / "m.zarr", masks)
    return d, masks


@pytest.mark.parametrize("out, conf", [("o.tif", "c.tif"), ("o.zarr", "c.ome.zarr"),
                                       ("o.zarr", "c.tif")])
def test_repair_to_file_writes_the_confidence(files, tmp_path, out, conf):
    d, masks = files
    repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / out, confidence=tmp_path / conf,
                   device="cpu")
    c = np.asarray(read_stack(tmp_path / conf))
    assert c.dtype == np.float32 and c.shape == masks.shape
    assert (c[masks == 0] == 1).all() and c[masks > 0].mean() < 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {out, conf, f"{out}.provenance.json", f"{conf}.provenance.json"})


def test_a_stopped_run_resumes_with_its_confidence(files, tmp_path):
    d, _ = files
    calls = []
    with pytest.raises(KeyboardInterrupt):
        repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "o.zarr", device="cpu",
                       confidence=tmp_path / "c.zarr",
                       should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert not (tmp_path / "c.zarr").exists()
    repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "o.zarr", device="cpu",
                   confidence=tmp_path / "c.zarr")
    repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "f.zarr", device="cpu",
                   confidence=tmp_path / "fc.zarr")
    np.testing.assert_array_equal(np.asarray(read_stack(tmp_path / "c.zarr")),
                                  np.asarray(read_stack(tmp_path / "fc.zarr")))


def test_cli_confidence_refuses_to_overwrite_the_input(files, tmp_path):
    import subprocess

    d, _ = files
    res = subprocess.run(command("repair", d / "in.zarr", "-m", d / "m.zarr", "-o",
                                 tmp_path / "o.zarr", "--confidence", d / "in.zarr",
                                 "--no-progress"), capture_output=True, text=True)
    assert res.returncode != 0 and "in.zarr" in res.stderr
    assert not (tmp_path / "o.zarr").exists()
