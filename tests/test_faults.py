"""Bad input and faults through the Python API and the command line.

Every case asserts its exact outcome: the error type (or exit code) and a key phrase of the
message, the inputs unchanged (file hashes, array copies) and no file left behind. The
widgets' cases are in test_faults_gui.py.
"""

import errno
import hashlib
import os
import shutil
import signal
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _cli import ENV, command, start_until
from _synth import moving_stack

from napari_flowinpaint import FlowInpainter, detect_damage, repair_slice, repair_stack
from napari_flowinpaint.tasks import cli
from napari_flowinpaint.tasks.evaluation import evaluate
from napari_flowinpaint.tasks.io import read_stack, write_stack
from napari_flowinpaint.tasks.simulation import random_mask, simulate_damage

STAGES_FAST = "initial_reference"


# ----------------------------------------------------------------------------- fixtures
def _tree(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` (hidden ones too), files with their SHA-256."""
    out = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        out[key] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of good and bad inputs, made once; tests copy it before writing into it."""
    d = tmp_path_factory.mktemp("inputs")
    stack = moving_stack(6, (64, 64), dtype=np.uint8)
    masks = np.zeros(stack.shape, np.uint8)
    masks[2, 20:40, 20:44] = 1
    masks[3, 5:15, 30:50] = 1
    write_stack(d / "in.tif", stack)
    write_stack(d / "in.zarr", stack)
    write_stack(d / "m.tif", masks)
    write_stack(d / "m.zarr", masks)
    write_stack(d / "small_mask.tif", masks[:, :32, :32])
    tifffile.imwrite(d / "rgb.tif", np.zeros((64, 64, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(d / "rgbstack.tif", np.zeros((6, 64, 64, 3), np.uint8),
                     photometric="rgb")
    with warnings.catch_warnings():  # tifffile warns that an empty array is nonconformant
        warnings.simplefilter("ignore", UserWarning)
        tifffile.imwrite(d / "zero.tif", np.zeros((0, 64, 64), np.uint8))
    tifffile.imwrite(d / "two.tif", stack[0])
    tifffile.imwrite(d / "i64.tif", stack.astype(np.int64))
    nan = stack.astype(np.float32)
    nan[1, 3, 3] = np.nan
    tifffile.imwrite(d / "nan.tif", nan)
    data = (d / "in.tif").read_bytes()
    (d / "trunc.tif").write_bytes(data[: len(data) // 3])
    (d / "text.tif").write_text("not a TIFF at all\n")
    shutil.copytree(d / "in.zarr", d / "corrupt.zarr")
    chunk = d / "corrupt.zarr" / "c" / "1" / "0" / "0"
    assert chunk.is_file()
    chunk.write_bytes(b"garbage" * 5)
    (d / "model.pt").write_bytes(b"\x80\x04K\x01.")
    weights = Path(__file__).parents[1] / "weights" / "flowinpaint-cpu.safetensors"
    shutil.copy(weights, d / "w.safetensors")
    (d / "w.json").write_text('{"architecture": 5}')
    (d / "adir").mkdir()
    (d / "existing.tif").write_bytes(b"somebody's data")
    (d / "existing.json").write_text("{}")
    return d


@pytest.fixture
def work(inputs, tmp_path):
    """A private copy of the inputs folder and its hashes before the case."""
    d = tmp_path / "w"
    shutil.copytree(inputs, d)
    return d, _tree(d)


# ----------------------------------------------------------------------------- CLI
# (arguments with {d} for the folder, exit code, key phrase of stderr)
CLI_CASES = {
    "input missing": (["repair", "{d}/nope.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif"],
                      2, "does not exist"),
    "mask of another shape": (["repair", "{d}/in.tif", "-m", "{d}/small_mask.tif", "-o",
                               "{d}/o.tif"], 2, "must match voxel for voxel"),
    "unknown output format": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o", "{d}/o.png"],
                              2, "supported: .tif, .tiff, .zarr"),
    "output onto the input": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o",
                               "{d}/in.tif", "--overwrite"], 2, "onto the input"),
    "output onto the mask": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o", "{d}/m.tif",
                              "--overwrite"], 2, "onto the input"),
    "output onto the input through ..": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o",
                                          "{d}/adir/../in.tif", "--overwrite"], 2,
                                         "onto the input"),
    "output exists": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o", "{d}/existing.tif"],
                      2, "already exists"),
    "output folder missing": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o",
                               "{d}/no/such/o.tif"], 2, "create it first"),
    "slice outside": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif",
                       "--slices", "2,9"], 2, "outside the stack"),
    "bad slice list": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif",
                        "--slices", "2;3"], 2, "cannot read the slice list"),
    "max distance 0": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif",
                        "--max-distance", "0"], 2, "must be at least 1"),
    "wrong device string": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif",
                             "--device", "gpu7"], 2, "unknown device 'gpu7'"),
    "pickle weights": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif",
                        "--weights", "{d}/model.pt"], 2, "pickle checkpoints are refused"),
    "malformed weights description": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o",
                                       "{d}/o.tif", "--weights", "{d}/w.safetensors"], 2,
                                      "has its 'architecture' malformed"),
    "weights missing": (["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif",
                         "--weights", "{d}/none.safetensors"], 2, "does not exist"),
    "RGB TIFF": (["repair", "{d}/rgb.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif"], 2,
                 "RGB or multichannel TIFF"),
    "RGB TIFF stack": (["repair", "{d}/rgbstack.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif"],
                       2, "RGB or multichannel TIFF"),
    "zero-size axis": (["repair", "{d}/zero.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif"], 2,
                       "an axis of size 0"),
    "a 2-D image": (["repair", "{d}/two.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif"], 2,
                    "no neighbouring sections"),
    "int64 data": (["repair", "{d}/i64.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif"], 2,
                   "expected uint8, uint16, float32 or float64"),
    "truncated TIFF": (["repair", "{d}/trunc.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif"], 2,
                       "could not be read as a TIFF"),
    "not a TIFF": (["repair", "{d}/text.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif"], 2,
                   "could not be read as a TIFF"),
    "corrupt zarr chunk": (["repair", "{d}/corrupt.zarr", "-m", "{d}/m.tif", "-o",
                            "{d}/o.zarr"], 2, "could not read section 1"),
    "NaN in a neighbour": (["repair", "{d}/nan.tif", "-m", "{d}/m.tif", "-o", "{d}/o.tif"], 2,
                           "section 1 (the neighbour before) contains NaN"),
    "mask folder without images": (["repair", "{d}/in.tif", "-m", "{d}/adir", "-o",
                                    "{d}/o.tif"], 2, "holds no .tif/.tiff or .png image"),
    "mask without extension": (["repair", "{d}/in.tif", "-m", "{d}/in.dat", "-o",
                                "{d}/o.tif"], 2, "cannot tell the format"),
    "report onto the input": (["detect", "{d}/in.tif", "-o", "{d}/d.tif", "--report",
                               "{d}/in.tif", "--overwrite"], 2,
                              "refusing to write the report onto the input"),
    "report onto its own mask": (["detect", "{d}/in.tif", "-o", "{d}/d.tif", "--report",
                                  "{d}/d.tif"], 2, "are the same path"),
    "report exists": (["detect", "{d}/in.tif", "-o", "{d}/d.tif", "--report",
                       "{d}/existing.json"], 2, "already exists"),
    "report folder missing": (["detect", "{d}/in.tif", "-o", "{d}/d.tif", "--report",
                               "{d}/no/r.csv"], 2, "create it first"),
    "detect onto the input": (["detect", "{d}/in.tif", "-o", "{d}/in.tif", "--overwrite"], 2,
                              "onto the input"),
    "sensitivity out of range": (["detect", "{d}/in.tif", "-o", "{d}/d.tif",
                                  "--sensitivity", "3"], 2, "sensitivity must lie in [0, 1]"),
    "evaluate JSON onto its data": (["evaluate", "--data", "{d}/in.tif", "--spacing", "1",
                                     "--json", "{d}/in.tif", "--overwrite"], 2,
                                    "refusing to write the --json onto the input"),
    "evaluate JSON exists": (["evaluate", "--data", "{d}/in.tif", "--spacing", "1", "--json",
                              "{d}/existing.json"], 2, "already exists"),
    "evaluate JSON folder missing": (["evaluate", "--data", "{d}/in.tif", "--spacing", "1",
                                      "--json", "{d}/no/e.json"], 2, "create it first"),
    "evaluate spacing 0": (["evaluate", "--data", "{d}/in.tif", "--spacing", "0"], 2,
                           "spacing must be >= 1"),
    "evaluate spacing too large": (["evaluate", "--data", "{d}/in.tif", "--spacing", "4"], 2,
                                   "too large for the z range"),
    "evaluate bad z range": (["evaluate", "--data", "{d}/in.tif", "--spacing", "1",
                              "--z-range", "a:b"], 2, "slice syntax"),
    "evaluate unknown method": (["evaluate", "--data", "{d}/in.tif", "--spacing", "1",
                                 "--methods", "magic"], 2, "unknown method"),
    "evaluate ratio 1.5": (["evaluate", "--data", "{d}/in.tif", "--spacing", "1", "--ratios",
                            "1.5"], 2, "must lie in (0, 1)"),
    "evaluate-detection JSON onto its input": (["evaluate-detection", "{d}/in.tif", "--json",
                                                "{d}/in.tif", "--overwrite"], 2,
                                               "onto the input"),
    "evaluate-detection neighbour damage 2": (["evaluate-detection", "{d}/in.tif",
                                               "--neighbour-damage", "2"], 2,
                                              "probability in [0, 1]"),
    "demo into a file": (["demo", "-o", "{d}/existing.tif"], 2, "is not a folder"),
    "finetune output exists": (["finetune", "{d}/in.tif", "-o", "{d}/w.safetensors"], 2,
                               "already exists"),
    "finetune with every triplet marked": (["finetune", "{d}/in.tif", "-m", "{d}/m.tif",
                                            "-o", "{d}/f.safetensors"], 2,
                                           "no triplet of sections is left to train on"),
    "finetune stack too short": (["finetune", "{d}/in.tif", "-o", "{d}/f.safetensors",
                                  "--spacing", "2"], 2, "too short to fine-tune"),
    "finetune mask of another shape": (["finetune", "{d}/in.tif", "-m", "{d}/small_mask.tif",
                                        "-o", "{d}/f.safetensors"], 2,
                                       "damage mask has shape"),
    "finetune onto the input": (["finetune", "{d}/in.tif", "-o", "{d}/in.tif"], 2,
                                "'{d}/in.tif' is the input"),
    "finetune onto the input's folder": (["finetune", "{d}/in.zarr", "-o", "{d}/in.zarr"], 2,
                                         "is the input"),
    "finetune onto the mask": (["finetune", "{d}/in.tif", "-m", "{d}/m.tif", "-o",
                                "{d}/m.tif"], 2, "'{d}/m.tif' is the input"),
    "finetune-detector onto the input": (["finetune-detector", "{d}/in.tif", "-o",
                                          "{d}/in.tif"], 2, "is the input"),
    "train-detector bad kind weights": (["train-detector", "-o", "{d}/run", "--data",
                                         "{d}/in.tif", "--kind-weights", "crack:2"], 2,
                                        "KIND=WEIGHT"),
    "train data missing": (["train", "-o", "{d}/run", "--data", "{d}/none.tif"], 2,
                           "does not exist"),
    "train into a folder of other files": (["train", "-o", "{d}", "--data", "{d}/in.tif"], 2,
                                           "is not a run to resume"),
    "train-detector into a file": (["train-detector", "-o", "{d}/in.tif", "--data",
                                    "{d}/in.tif"], 2, "is a file"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_input(case, work, capsys):
    d, before = work
    argv, code, phrase = CLI_CASES[case]
    argv, phrase = [a.format(d=d) for a in argv], phrase.format(d=d)
    if argv[0] in ("repair", "detect"):
        argv.append("--no-progress")
    assert cli.main(argv) == code, capsys.readouterr().err
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and phrase in lines[0], err  # one line that says what is wrong
    assert "Traceback" not in err
    assert _tree(d) == before  # inputs untouched, nothing left behind


@pytest.mark.parametrize("command", ["finetune", "finetune-detector"])
def test_finetune_says_where_weights_without_the_suffix_go(work, command, monkeypatch,
                                                           capsys):
    from napari_flowinpaint.tasks import training

    d, _ = work
    given = []
    name = command.replace("-", "_")
    monkeypatch.setattr(training, name, lambda stack, out, **kw: given.append(out) or (
        _ for _ in ()).throw(KeyboardInterrupt))  # stops before any work
    assert cli.main([command, str(d / "in.tif"), "-o", str(d / "tuned")]) == 130
    said = capsys.readouterr().out
    assert f"written to {d / 'tuned.safetensors'} (and tuned.json beside it)" in said
    assert given == [d / "tuned"]


def test_cli_zarr_mask_feeds_repair_and_detect_output_too(work, capsys):
    d, before = work
    assert cli.main(["repair", str(d / "in.tif"), "-m", str(d / "m.zarr"), "-o",
                     str(d / "o.zarr"), "--no-progress", "--stages", STAGES_FAST]) == 0
    assert cli.main(["detect", str(d / "in.tif"), "-o", str(d / "det.zarr"), "--no-progress"]) == 0
    assert cli.main(["repair", str(d / "in.tif"), "-m", str(d / "det.zarr"), "-o",
                     str(d / "o2.tif"), "--no-progress", "--stages", STAGES_FAST]) == 0
    after = _tree(d)
    assert {k: v for k, v in after.items() if k in before} == before
    new = {k.split("/")[0] for k in after if k not in before}  # stores are folders
    outputs = {"o.zarr", "det.zarr", "o2.tif"}  # and no hidden temporary: the outputs and
    assert new == outputs | {f"{o}.provenance.json" for o in outputs}  # their records
    repaired = read_stack(d / "o.zarr")
    stack, masks = read_stack(d / "in.tif"), read_stack(d / "m.tif")
    np.testing.assert_array_equal(np.asarray(repaired)[masks == 0], stack[masks == 0])


# ----------------------------------------------------------------------------- API
def _stack():
    return moving_stack(5, (64, 64), dtype=np.uint16)


def _mask():
    m = np.zeros((64, 64), bool)
    m[20:40, 20:40] = True
    return m


def _with(value, z, where=(3, 3)):
    s = _stack().astype(np.float32)
    s[(z, *where)] = value
    return s


API_CASES = {
    "mask None": (lambda: repair_slice(_stack(), 2, None), ValueError, "no mask was given"),
    "slice outside": (lambda: repair_slice(_stack(), 9, _mask()), IndexError,
                      "outside the stack"),
    "2-D stack": (lambda: repair_slice(_stack()[0], 0, _mask()), ValueError,
                  "expected a 3-D stack"),
    "single section": (lambda: repair_slice(_stack()[:1], 0, _mask()), ValueError,
                       "needs at least 2"),
    "zero-size sections": (lambda: repair_slice(np.zeros((4, 0, 5), np.uint8), 1,
                                                np.zeros((0, 5), bool)), ValueError,
                           "at least 2 x 2"),
    "mask of another shape": (lambda: repair_slice(_stack(), 2, _mask()[:10]), ValueError,
                              "must match pixel for pixel"),
    "soft mask": (lambda: repair_slice(_stack(), 2, _mask() * 0.5), ValueError,
                  "values other than 0 and 1"),
    "negative labels": (lambda: repair_slice(_stack(), 2, -_mask().astype(np.int8)),
                        ValueError, "negative values"),
    "NaN in the section": (lambda: repair_slice(_with(np.nan, 2), 2, _mask()), ValueError,
                           "section 2 (the one to repair) contains NaN"),
    "inf in a neighbour": (lambda: repair_slice(_with(np.inf, 3), 2, _mask()), ValueError,
                           "section 3 (the neighbour after) contains NaN or infinite"),
    "uint32 data": (lambda: repair_slice(_stack().astype(np.uint32), 2, _mask()), TypeError,
                    "dtype uint32"),
    "mask stack of another shape": (lambda: repair_stack(_stack(), np.zeros((5, 8, 8))),
                                    ValueError, "mask stack has shape"),
    "unknown device": (lambda: FlowInpainter(device="tpu"), ValueError, "unknown device"),
    "pickle weights": (lambda: FlowInpainter(weights="model.pth"), ValueError,
                       "pickle checkpoints are refused"),
    "unknown stage": (lambda: FlowInpainter(stages="magic"), ValueError, "magic"),
    "unknown flow": (lambda: FlowInpainter(flow_method="raft"), ValueError, "raft"),
    "alpha 2": (lambda: FlowInpainter(stages=STAGES_FAST).inpaint(
        _stack()[1], _stack()[2], _stack()[3], _mask(), alpha=2.0), ValueError,
        "alpha must lie in [0, 1]"),
    "RGB section": (lambda: FlowInpainter(stages=STAGES_FAST).inpaint(
        None, np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64), np.uint8),
        np.zeros((64, 64, 3), bool)), ValueError, "RGB"),
    "detect 4-D": (lambda: detect_damage(np.zeros((2, 3, 32, 32), np.uint8)), ValueError,
                   "expected one section"),
    "detect sensitivity 2": (lambda: detect_damage(_stack(), 1, sensitivity=2), ValueError,
                             "sensitivity must lie in [0, 1]"),
    "detect slice outside": (lambda: detect_damage(_stack(), 7), IndexError, "outside"),
    "detect +inf": (lambda: detect_damage(_with(np.inf, 0, (slice(0, 8),))), ValueError,
                    "stack[0] contains NaN or infinite values"),
    "detect NaN in a neighbour": (lambda: detect_damage(_with(np.nan, 3, (slice(None),)), 2),
                                  ValueError, "stack[3] contains NaN or infinite values"),
    "simulate on 16 px": (lambda: simulate_damage(np.zeros((16, 16), np.uint8), "hole"),
                          ValueError, "at least 32x32"),
    "simulate unknown kind": (lambda: simulate_damage(_stack()[0], "fire"), ValueError,
                              "unknown damage kind"),
    "random mask ratio 1.5": (lambda: random_mask((64, 64), 1.5), ValueError,
                              "ratio must be a damaged fraction"),
    "evaluate spacing too large": (lambda: evaluate(_stack(), spacing=3), ValueError,
                                   "too large"),
    "write a 2-D stack": (lambda: write_stack(Path(os.devnull).parent / "x.tif",
                                              np.zeros((4, 4))), ValueError,
                          "expected a 3-D stack"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_bad_input(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call, exc_type, phrase = API_CASES[case]
    with pytest.raises(exc_type) as info:
        call()
    assert phrase in str(info.value)
    assert "\n" not in str(info.value)  # one line
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_api_never_modifies_its_inputs():
    stack, mask = _stack(), _mask()
    masks = np.zeros(stack.shape, bool)
    masks[2] = mask
    keep = stack.copy(), mask.copy(), masks.copy()
    engine = FlowInpainter(stages=STAGES_FAST)
    repair_slice(stack, 2, mask, inpainter=engine)
    repair_stack(stack, masks, inpainter=engine)
    detect_damage(stack, 2)
    for a, b in zip((stack, mask, masks), keep, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (8, 8), (13, 40), (11, 64), (2, 1000),
                                   (1000, 2), (15, 15)])
@pytest.mark.parametrize("stages", ["initial_reference", "guided_inpainting"])
def test_small_sections_are_repaired_without_crashing(shape, stages):
    # OpenCV's optical flow crashes the interpreter on sections 11-15 pixels tall and
    # raises on 8 x 8: the engine mirrors small sections out before the flow
    rng = np.random.default_rng(0)
    stack = (rng.random((3, *shape)) * 255).astype(np.uint8)
    mask = np.zeros(shape, bool)
    mask[shape[0] // 2, shape[1] // 2] = True
    out = FlowInpainter(stages=stages).inpaint(stack[0], stack[1], stack[2], mask)
    assert out.shape == shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~mask], stack[1][~mask])


@pytest.mark.parametrize(("dtype", "lo", "hi"), [
    (np.float32, -3e38, 3e38), (np.float64, 0, 1e302), (np.float64, -1e302, 1e302),
    (np.float32, 0, 1e-13), (np.float64, 0, 1e-20), (np.float64, 5.0, 5.0 + 1e-9)])
def test_extreme_float_ranges_are_repaired_at_their_scale(dtype, lo, hi):
    unit = moving_stack(3, (64, 64)).astype(np.float64) / 65535.0
    stack = (lo + unit * (hi - lo)).astype(dtype)
    mask = _mask()
    errors = []
    for stages in ("initial_reference", "guided_inpainting"):
        out = FlowInpainter(stages=stages).inpaint(stack[0], stack[1], stack[2], mask)
        assert out.dtype == dtype and np.isfinite(out).all()
        truth = stack[1].astype(np.float64)
        # relative to the data's own range: the same as for data in [0, 1]
        err = np.abs(out.astype(np.float64) - truth)[mask].mean() / (truth.max() - truth.min())
        errors.append(err)
        assert np.ptp(out[mask].astype(np.float64)) > 0  # not one constant
    ref = [FlowInpainter(stages=s).inpaint(*unit.astype(np.float64), mask)
           for s in ("initial_reference", "guided_inpainting")]
    ref_err = [np.abs(r - unit[1])[mask].mean() / np.ptp(unit[1]) for r in ref]
    np.testing.assert_allclose(errors, ref_err, rtol=0.05, atol=1e-3)


@pytest.mark.parametrize(("factor", "offset", "dtype"), [
    (1e-9, 0.0, np.float32), (1e30, 5e30, np.float32), (1e30, -3e31, np.float64),
    (6e38 / 1.01, -3e38, np.float32)])
def test_detection_on_float_data_is_scale_free(factor, offset, dtype):
    """The same stack times any factor, plus any offset, gets the same mask: no absolute
    grey-level threshold (data all under 1e-6 was flagged everywhere; data spanning +-3e38
    found nothing), no overflow warning."""
    stack = moving_stack(5, (96, 96), dtype=np.uint8)
    stack[2], truth = simulate_damage(stack[2], "hole", 0)
    unit = stack.astype(np.float32) / 255
    ref = detect_damage(unit)
    assert (ref[2] & truth).sum() > 0.8 * truth.sum() and not ref[[0, 1, 3, 4]].any()
    scaled = (unit.astype(np.float64) * factor + offset).astype(dtype)
    keep = scaled.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warning either
        found = detect_damage(scaled)
    np.testing.assert_array_equal(found, ref)
    np.testing.assert_array_equal(scaled, keep)  # the input is not modified


# ----------------------------------------------------------------------------- faults
def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("ext", ["tif", "zarr"])
def test_full_disk_leaves_nothing_and_names_the_output(work, ext, monkeypatch, capsys):
    d, before = work
    import tifffile as tf
    import zarr

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(d / ".o-x.partial.tif"))

    if ext == "tif":
        monkeypatch.setattr(tf, "imwrite", full)
    else:
        real = zarr.Array.__setitem__
        calls = []

        def setitem(self, key, value):
            calls.append(key)
            if len(calls) > 1:  # the first section is written, then the disk is full
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(self, key, value)

        monkeypatch.setattr(zarr.Array, "__setitem__", setitem)
    code = cli.main(["repair", str(d / "in.tif"), "-m", str(d / "m.tif"), "-o",
                     str(d / f"o.{ext}"), "--no-progress", "--stages", STAGES_FAST])
    err = capsys.readouterr().err
    assert code == 2 and "No space left" in err and "is the disk full?" in err
    assert f"could not write the output '{d / f'o.{ext}'}'" in err
    assert _tree(d) == before and _hidden(d) == []


def test_full_disk_on_a_real_tiny_file_system(work, tmp_path, capsys):
    d, _ = work
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mnt)],
                         capture_output=True)
    if res.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the patched-write cases cover it")
    try:
        stack = moving_stack(8, (128, 128), dtype=np.uint8)  # 128 KiB: does not fit
        masks = np.zeros(stack.shape, np.uint8)
        masks[3, 10:40, 10:40] = 1
        write_stack(d / "big.tif", stack)
        write_stack(d / "big_m.tif", masks)
        for out in ("o.tif", "o.zarr"):
            code = cli.main(["repair", str(d / "big.tif"), "-m", str(d / "big_m.tif"), "-o",
                             str(mnt / out), "--no-progress", "--stages", STAGES_FAST])
            err = capsys.readouterr().err
            assert code == 2 and "is the disk full?" in err, err
            assert list(mnt.iterdir()) == []  # no output, no temporary
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("ext", ["zarr", "tif"])
def test_signal_mid_run_leaves_no_output(tmp_path, sig, code, ext):
    """Ctrl-C and SIGTERM: no output; a TIFF leaves nothing, a zarr output keeps its
    finished sections hidden, and the same command then finishes the job."""
    stack = moving_stack(60, (256, 256), dtype=np.uint8)
    masks = np.zeros(stack.shape, np.uint8)
    masks[1:-1, 40:200, 30:220] = 1
    write_stack(tmp_path / "in.tif", stack)
    write_stack(tmp_path / "m.tif", masks)
    before = _tree(tmp_path)
    argv = command("repair", tmp_path / "in.tif", "-m", tmp_path / "m.tif", "-o",
                   tmp_path / f"out.{ext}", "--workers", "1")
    proc, seen = start_until(argv, r"repair: [1-9]")  # repairs are under way
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=300)
    assert proc.returncode == code, seen + rest
    assert not (tmp_path / f"out.{ext}").exists()
    if ext == "tif":
        assert "nothing half-written was left behind" in rest
        assert _tree(tmp_path) == before  # no output, no hidden temporary
        return
    assert "run the same command again to continue" in rest
    assert _hidden(tmp_path) == [".out.zarr.partial.zarr"]
    res = subprocess.run([*argv, "--no-progress"], capture_output=True, text=True, env=ENV,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert _hidden(tmp_path) == []
    out = np.asarray(read_stack(tmp_path / "out.zarr"))
    np.testing.assert_array_equal(out[masks == 0], stack[masks == 0])
    assert (out[masks == 1] != stack[masks == 1]).mean() > 0.5  # repaired, not copied


def test_section_index_and_mask_path_are_refused_clearly():
    # issue 26: a float index was cut silently (2.5 repaired section 2); a path as the mask
    # read as "shape ()"
    from napari_flowinpaint import detect_damage, repair_slice

    stack = (np.random.default_rng(0).random((5, 32, 32)) * 255).astype(np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[8:16, 8:16] = True
    with pytest.raises(TypeError, match="whole section index"):
        repair_slice(stack, 2.5, mask)
    with pytest.raises(TypeError, match="whole section index"):
        detect_damage(stack, 1.0)
    with pytest.raises(TypeError, match="is a path"):
        repair_slice(stack, 2, "mask.tif")
    repaired = repair_slice(stack, np.int64(2), mask)  # numpy integers are fine
    assert np.array_equal(repaired[~mask], stack[2][~mask])


def test_damage_on_consecutive_sections_is_not_copied_into_the_repair():
    # a hole at the same place on sections 6 and 7: section 7 was repaired from section 6's
    # white pixels (found by the QC report); the neighbour damaged where the section is is
    # now skipped for the next one
    from napari_flowinpaint.tasks.io import load_sample
    from napari_flowinpaint.tasks.repair import find_neighbours

    stack, _ = load_sample()
    stack = stack.copy()
    masks = np.zeros(stack.shape, np.uint8)
    masks[6:8, 60:120, 50:140] = 1
    stack[masks > 0] = 255  # blank film where the sections are torn
    assert find_neighbours(stack, 7, masks=masks) == (6, 8)  # (without the hole: as before)
    assert find_neighbours(stack, 7, masks=masks, hole=masks[7]) == (5, 8)
    hole = masks[7] > 0
    repaired = repair_slice(stack, 7, hole, masks=masks)
    tissue = float(stack[5][hole].mean())
    assert abs(float(repaired[hole].mean()) - tissue) < 25  # not the white of section 6
    assert np.array_equal(repaired[~hole], stack[7][~hole])
