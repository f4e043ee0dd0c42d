import os
import subprocess
import sys

import numpy as np
import pytest
from _synth import moving_stack

from napari_flowinpaint.engine import FlowInpainter
from napari_flowinpaint.tasks import cli
from napari_flowinpaint.tasks.io import read_stack, read_voxel_size, write_stack
from napari_flowinpaint.tasks.repair import format_slices, parse_slices

DAMAGED_Z = (1, 3)


def _hole(shape, z):
    m = np.zeros(shape, bool)
    if z == 1:
        m[20:40, 18:44] = True
    else:
        m[8:30, 30:56] = True
    return m


@pytest.fixture
def data(tmp_path):
    """A 5-slice uint16 stack of a smoothly shifting texture with holes in slices 1 and 3,
    written as TIFF (with a voxel size) and as zarr, plus the mask stack."""
    truth = moving_stack(5, (64, 64), dtype=np.uint16)
    masks = np.zeros(truth.shape, np.uint8)
    for z in DAMAGED_Z:
        masks[z] = _hole(truth.shape[1:], z)
    damaged = truth.copy()
    damaged[masks > 0] = np.iinfo(np.uint16).max
    paths = {
        "tif": write_stack(tmp_path / "in.tif", damaged, voxel_size=(50, 4, 4)),
        "zarr": write_stack(tmp_path / "in.zarr", damaged),
        "mask": write_stack(tmp_path / "mask.tif", masks),
    }
    return truth, damaged, masks > 0, paths, tmp_path


def _err(a, b, m):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64))[m].mean())


def _hidden(folder):
    return [n for n in os.listdir(folder) if n.startswith(".")]


@pytest.mark.parametrize(("src", "ext"), [("tif", "tif"), ("zarr", "zarr"), ("tif", "zarr")])
def test_repair_repairs_the_masked_slices_only(data, src, ext, capsys):
    truth, damaged, masks, paths, tmp = data
    out = tmp / f"out.{ext}"
    code = cli.main(["repair", str(paths[src]), "--mask", str(paths["mask"]), "-o", str(out),
                     "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "repaired 2 slice(s) (1,3) of 5" in printed
    assert f"method {FlowInpainter().method!r}" in printed
    result = np.asarray(read_stack(out))
    assert result.dtype == np.uint16 and result.shape == truth.shape
    for z in DAMAGED_Z:
        m = masks[z]
        before, after = _err(damaged[z], truth[z], m), _err(result[z], truth[z], m)
        assert before > 50_000 and after < 0.02 * before, (z, before, after)
        np.testing.assert_array_equal(result[z][~m], damaged[z][~m])  # known pixels kept
    for z in (0, 2, 4):
        np.testing.assert_array_equal(result[z], damaged[z])
    np.testing.assert_array_equal(np.asarray(read_stack(paths[src])), damaged)  # input intact
    assert _hidden(tmp) == []
    if src == "tif" and ext == "tif":
        assert read_voxel_size(out) == pytest.approx((50, 4, 4))


def test_repair_only_the_chosen_slices(data, capsys):
    truth, damaged, masks, paths, tmp = data
    code = cli.main(["repair", str(paths["tif"]), "-m", str(paths["mask"]), "-o",
                     str(tmp / "o.tif"), "--slices", "2-3", "--no-progress"])
    assert code == 0
    captured = capsys.readouterr()
    assert "slice(s) 2 have an empty mask" in captured.err
    assert "repaired 1 slice(s) (3)" in captured.out
    result = read_stack(tmp / "o.tif")
    np.testing.assert_array_equal(result[1], damaged[1])  # not chosen: left damaged
    assert _err(result[3], truth[3], masks[3]) < 0.02 * _err(damaged[3], truth[3], masks[3])


def test_progress_bar_goes_to_stderr(data, capsys):
    _, _, _, paths, tmp = data
    assert cli.main(["repair", str(paths["tif"]), "-m", str(paths["mask"]), "-o",
                     str(tmp / "o.tif")]) == 0
    captured = capsys.readouterr()
    assert "2/2" in captured.err and "repair" in captured.err
    assert "2/2" not in captured.out


def test_existing_output_needs_overwrite(data, capsys):
    _, damaged, _, paths, tmp = data
    out = tmp / "out.tif"
    out.write_bytes(b"precious")
    args = ["repair", str(paths["tif"]), "-m", str(paths["mask"]), "-o", str(out),
            "--no-progress"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"precious"
    assert cli.main([*args, "--overwrite"]) == 0
    assert read_stack(out).shape == damaged.shape
    assert _hidden(tmp) == []


@pytest.mark.parametrize("target", ["tif", "mask"])
def test_refuses_to_overwrite_an_input(data, target, capsys):
    _, damaged, _, paths, tmp = data
    before = paths[target].read_bytes()
    code = cli.main(["repair", str(paths["tif"]), "-m", str(paths["mask"]), "-o",
                     str(paths[target]), "--overwrite", "--no-progress"])
    assert code == 2
    assert "refusing to write the output onto the input" in capsys.readouterr().err
    assert paths[target].read_bytes() == before


def test_clear_errors_and_exit_codes(data, capsys):
    _, _, _, paths, tmp = data
    write_stack(tmp / "small_mask.tif", np.zeros((5, 32, 32), np.uint8))
    cases = [
        (["repair", str(tmp / "nope.tif"), "-m", str(paths["mask"]), "-o", str(tmp / "o.tif")],
         "does not exist"),
        (["repair", str(paths["tif"]), "-m", str(tmp / "small_mask.tif"), "-o",
          str(tmp / "o.tif")], "must match voxel for voxel"),
        (["repair", str(paths["tif"]), "-m", str(paths["mask"]), "-o", str(tmp / "o.png")],
         "supported: .tif, .tiff, .zarr"),
        (["repair", str(paths["tif"]), "-m", str(paths["mask"]), "-o", str(tmp / "o.tif"),
          "--slices", "1,9"], "outside the stack"),
        (["repair", str(paths["tif"]), "-m", str(paths["mask"]), "-o", str(tmp / "o.tif"),
          "--slices", "x"], "cannot read the slice list"),
    ]
    for argv, message in cases:
        assert cli.main([*argv, "--no-progress"]) == 2, argv
        err = capsys.readouterr().err
        assert "napari-flowinpaint repair: error:" in err and message in err, (argv, err)
    assert not (tmp / "o.tif").exists() and _hidden(tmp) == []
    with pytest.raises(SystemExit) as exc:  # argparse: missing required --mask
        cli.main(["repair", str(paths["tif"]), "-o", str(tmp / "o.tif")])
    assert exc.value.code == 2


def test_slice_without_usable_neighbour_fails_before_any_work(tmp_path, capsys):
    stack = moving_stack(3, (32, 32))
    masks = np.ones(stack.shape, np.uint8)  # every slice entirely damaged
    write_stack(tmp_path / "in.tif", stack)
    write_stack(tmp_path / "m.tif", masks)
    code = cli.main(["repair", str(tmp_path / "in.tif"), "-m", str(tmp_path / "m.tif"), "-o",
                     str(tmp_path / "o.tif"), "--no-progress"])
    assert code == 2
    assert "slice(s) 0-2 have no usable neighbour" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["in.tif", "m.tif"]


@pytest.mark.parametrize("ext", ["tif", "zarr"])
def test_ctrl_c_mid_way_leaves_no_output(data, ext, monkeypatch, capsys):
    _, _, _, paths, tmp = data
    calls = []
    real = FlowInpainter.inpaint

    def inpaint(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the first slice is done (and, for zarr, already written)
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FlowInpainter, "inpaint", inpaint)
    argv = ["repair", str(paths["tif"]), "-m", str(paths["mask"]), "-o",
            str(tmp / f"out.{ext}"), "--no-progress"]
    code = cli.main(argv)
    assert code == 130 and len(calls) == 2
    err = capsys.readouterr().err
    assert "interrupted" in err
    assert not (tmp / f"out.{ext}").exists()
    if ext == "tif":
        assert _hidden(tmp) == []
        return
    # a zarr output keeps the finished sections, hidden, and the same command resumes
    assert _hidden(tmp) == [".out.zarr.partial.zarr"] and "run the same command again" in err
    again = []
    monkeypatch.setattr(FlowInpainter, "inpaint",
                        lambda self, *a, **k: again.append(1) or real(self, *a, **k))
    assert cli.main(argv) == 0
    assert len(again) == 1  # slice 1 was kept: only slice 3 is repaired
    assert _hidden(tmp) == []
    monkeypatch.setattr(FlowInpainter, "inpaint", real)
    assert cli.main([*argv[:5], str(tmp / "again.zarr"), "--no-progress"]) == 0
    np.testing.assert_array_equal(np.asarray(read_stack(tmp / "out.zarr")),
                                  np.asarray(read_stack(tmp / "again.zarr")))


@pytest.mark.parametrize("ext", ["tif", "zarr"])
def test_failing_write_leaves_no_output(data, ext, monkeypatch, capsys):
    _, _, _, paths, tmp = data
    from napari_flowinpaint.tasks import io, parallel

    def fail(self):
        raise OSError("No space left on device")

    if ext == "tif":
        monkeypatch.setattr(io.StackWriter, "_write_tiff", fail)
    else:  # zarr is written section by section; the last step fails
        monkeypatch.setattr(parallel.ResumableStore, "commit", fail)
    code = cli.main(["repair", str(paths["tif"]), "-m", str(paths["mask"]), "-o",
                     str(tmp / f"out.{ext}"), "--no-progress"])
    assert code == 2 and "No space left" in capsys.readouterr().err
    assert not (tmp / f"out.{ext}").exists() and _hidden(tmp) == []


def test_empty_mask_writes_an_unchanged_copy(tmp_path, capsys):
    stack = moving_stack(3, (32, 32))
    write_stack(tmp_path / "in.tif", stack)
    write_stack(tmp_path / "m.tif", np.zeros(stack.shape, bool).astype(np.uint8))
    assert cli.main(["repair", str(tmp_path / "in.tif"), "-m", str(tmp_path / "m.tif"), "-o",
                     str(tmp_path / "o.zarr"), "--no-progress"]) == 0
    assert "no slice to repair" in capsys.readouterr().out
    np.testing.assert_array_equal(read_stack(tmp_path / "o.zarr")[:], stack)


def test_parse_and_format_slices():
    assert parse_slices("3,7-9") == [3, 7, 8, 9]
    assert parse_slices(" 5, 1-2 ,2", 6) == [1, 2, 5]
    assert format_slices([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    for bad in ("", "a", "3-", "-1", "4-2", "1;2"):
        with pytest.raises(ValueError):
            parse_slices(bad)
    with pytest.raises(ValueError, match=r"slice\(s\) 6 are outside the stack"):
        parse_slices("1,6", 6)


@pytest.mark.parametrize("command", list(cli.SUBCOMMANDS))
def test_each_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: napari-flowinpaint {command}")
    if command == "repair":
        for option in ("--mask", "--output", "--overwrite", "--slices", "--max-distance",
                       "--device", "--flow-method"):
            assert option in out


def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "napari_flowinpaint", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: napari-flowinpaint")
    for command in ("repair", "evaluate", "demo"):
        assert command in proc.stdout
