"""Faults of reuse: nothing stale is reused, nothing is left behind or left running.

Resumed runs and ``auto`` reuse work only when it provably belongs to the data and options
of this run (content fingerprints); every case that could go silently wrong asserts the
output against the input outside the mask. Inputs with missing zarr chunks are refused,
failed runs leave no partial store that blocks the next one, and local workers end with
their parent.
"""

import shutil
import signal

import numpy as np
import pytest
from _cli import command, start_until
from _synth import moving_stack

from napari_flowinpaint.tasks import cli
from napari_flowinpaint.tasks.io import read_stack, write_stack
from napari_flowinpaint.tasks.parallel import ResumableStore
from napari_flowinpaint.tasks.volume import repair_to_file

FAST = dict(stages="initial_reference", device="cpu")
STAGES_FAST = "initial_reference"


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _stopper(items: int):
    """``should_stop`` for a run that stops after ``items`` tasks (serial runs poll it
    before each task)."""
    calls = []
    return lambda: calls.append(1) or len(calls) > items


@pytest.fixture
def vol(tmp_path):
    """An 8-section stack with a mask on sections 2 and 5."""
    stack = moving_stack(8, (64, 64), dtype=np.uint8)
    masks = np.zeros(stack.shape, np.uint8)
    masks[2, 10:30, 10:30] = 1
    masks[5, 10:30, 34:54] = 1
    write_stack(tmp_path / "in.zarr", stack)
    write_stack(tmp_path / "m.zarr", masks)
    return tmp_path, stack, masks


# ----------------------------------------------------------------------------- resume
def test_resume_after_the_mask_was_edited_redoes_the_sections_it_changed(vol):
    d, stack, masks = vol
    with pytest.raises(KeyboardInterrupt):  # section 2 is repaired, then the run stops
        repair_to_file(d / "in.zarr", d / "m.zarr", d / "o.zarr", should_stop=_stopper(1),
                       **FAST)
    assert _hidden(d) == [".o.zarr.partial.zarr"]
    edited = masks.copy()  # the same sections, another region of section 2
    edited[2] = 0
    edited[2, 36:56, 36:56] = 1
    write_stack(d / "m.zarr", edited, overwrite=True)
    said = []
    summary = repair_to_file(d / "in.zarr", d / "m.zarr", d / "o.zarr", log=said.append,
                             **FAST)
    out = np.asarray(read_stack(summary.output))
    np.testing.assert_array_equal(out[edited == 0], stack[edited == 0])
    fresh = repair_to_file(d / "in.zarr", d / "m.zarr", d / "f.zarr", **FAST)
    np.testing.assert_array_equal(out, np.asarray(read_stack(fresh.output)))
    assert summary.resumed == 0 and any("section(s) 2 are done again" in s for s in said)


@pytest.mark.parametrize("changed", ["all", "section 6"])
def test_resume_after_the_input_changed_in_place_redoes_what_read_it(vol, changed):
    d, stack, masks = vol
    with pytest.raises(KeyboardInterrupt):  # sections 2 and 5 are repaired
        repair_to_file(d / "in.zarr", d / "m.zarr", d / "o.zarr", should_stop=_stopper(2),
                       **FAST)
    new = stack.copy()
    if changed == "all":
        new = moving_stack(8, (64, 64), seed=7, dtype=np.uint8)
    else:  # the neighbour after section 5 only: section 2 still holds
        new[6] = 255 - new[6]
    write_stack(d / "in.zarr", new, overwrite=True)
    said = []
    summary = repair_to_file(d / "in.zarr", d / "m.zarr", d / "o.zarr", log=said.append,
                             **FAST)
    out = np.asarray(read_stack(summary.output))
    np.testing.assert_array_equal(out[masks == 0], new[masks == 0])
    fresh = repair_to_file(d / "in.zarr", d / "m.zarr", d / "f.zarr", **FAST)
    np.testing.assert_array_equal(out, np.asarray(read_stack(fresh.output)))
    redone = "2,5" if changed == "all" else "5"
    assert any(f"section(s) {redone} are done again" in s for s in said), said
    assert summary.resumed == (0 if changed == "all" else 1)


def test_resume_with_the_same_data_keeps_what_was_finished(vol):
    d, *_ = vol
    with pytest.raises(KeyboardInterrupt):
        repair_to_file(d / "in.zarr", d / "m.zarr", d / "o.zarr", should_stop=_stopper(2),
                       **FAST)
    said = []
    summary = repair_to_file(d / "in.zarr", d / "m.zarr", d / "o.zarr", log=said.append,
                             **FAST)
    assert summary.resumed == 2 and not any("done again" in s for s in said)


def test_detection_resumed_after_the_input_changed_judges_the_new_input(tmp_path):
    from napari_flowinpaint.tasks.volume_detect import detect_to_file

    stack = moving_stack(20, (64, 64), dtype=np.uint8)
    write_stack(tmp_path / "in.zarr", stack)
    with pytest.raises(KeyboardInterrupt):  # the first block of 8 sections is judged
        detect_to_file(tmp_path / "in.zarr", tmp_path / "d.zarr", should_stop=_stopper(1))
    damaged = stack.copy()
    damaged[3, 10:50, 10:50] = 255  # a hole in a section already judged
    write_stack(tmp_path / "in.zarr", damaged, overwrite=True)
    rows = detect_to_file(tmp_path / "in.zarr", tmp_path / "d.zarr")
    fresh = detect_to_file(tmp_path / "in.zarr", tmp_path / "f.zarr")
    assert rows == fresh and rows[3]["flagged"]
    np.testing.assert_array_equal(np.asarray(read_stack(tmp_path / "d.zarr")),
                                  np.asarray(read_stack(tmp_path / "f.zarr")))


# ----------------------------------------------------------------------------- auto
@pytest.fixture
def two_stacks(tmp_path):
    """Two stacks with white holes on different sections, and the holes."""
    out = {}
    for name, seed, zs in (("a", 0, (2, 3)), ("b", 5, (6, 8))):
        stack = moving_stack(10, (96, 96), seed=seed, dtype=np.uint8)
        holes = np.zeros(stack.shape, bool)
        for z in zs:
            holes[z, 20:60, 15:65] = True
        stack[holes] = 255
        write_stack(tmp_path / f"{name}.zarr", stack)
        out[name] = stack, holes
    (tmp_path / "out").mkdir()
    return tmp_path, out


def _auto(d, name, *extra):
    return cli.main(["auto", str(d / f"{name}.zarr"), "-o", str(d / "out" / "fixed.zarr"),
                     "--stages", STAGES_FAST, "--device", "cpu", "--no-progress", *extra])


def test_auto_does_not_reuse_the_mask_and_report_of_another_stack(two_stacks, capsys):
    d, stacks = two_stacks
    assert _auto(d, "a") == 0
    shutil.rmtree(d / "out" / "fixed.zarr")  # the repaired stack is moved away; not the rest
    capsys.readouterr()
    before = sorted(p.name for p in (d / "out").iterdir())
    assert _auto(d, "b") == 2
    err = capsys.readouterr().err
    assert "not made by a detection of this input" in err and "--overwrite" in err
    assert sorted(p.name for p in (d / "out").iterdir()) == before  # nothing written
    assert _auto(d, "b", "--overwrite") == 0, capsys.readouterr().err
    stack, holes = stacks["b"]
    fixed = np.asarray(read_stack(d / "out" / "fixed.zarr"))
    found = np.asarray(read_stack(d / "out" / "fixed-damage.zarr")) > 0
    assert found[holes].mean() > 0.9  # b's own damage was detected, and repaired
    np.testing.assert_array_equal(fixed[~found], stack[~found])
    assert (fixed[holes & found] != 255).mean() > 0.95


def test_auto_reuses_its_own_detection_only_with_the_same_options(two_stacks, capsys):
    d, stacks = two_stacks
    assert _auto(d, "a") == 0
    shutil.rmtree(d / "out" / "fixed.zarr")  # as if interrupted in the repair phase
    capsys.readouterr()
    assert _auto(d, "a", "--sensitivity", "0.9") == 2
    assert "other detection options" in capsys.readouterr().err
    (d / "out" / "fixed-report.csv").write_text("z,damaged_fraction,regions,flagged\n")
    assert _auto(d, "a") == 2  # a report that is not the detection's
    assert "the report was changed" in capsys.readouterr().err


def test_auto_resumes_with_its_own_mask(two_stacks, capsys):
    d, stacks = two_stacks
    assert _auto(d, "a") == 0
    shutil.rmtree(d / "out" / "fixed.zarr")  # as if interrupted in the repair phase: before
    (d / "out" / "fixed-qc.html").unlink()  # the QC report is written
    capsys.readouterr()
    assert _auto(d, "a") == 0
    assert "were made from this input with these options: using them" in \
        capsys.readouterr().err
    stack, _ = stacks["a"]
    found = np.asarray(read_stack(d / "out" / "fixed-damage.zarr")) > 0
    fixed = np.asarray(read_stack(d / "out" / "fixed.zarr"))
    np.testing.assert_array_equal(fixed[~found], stack[~found])


# ----------------------------------------------------------------------------- chunks
def test_a_missing_chunk_of_the_input_is_an_error_naming_the_section(vol, capsys):
    d, stack, masks = vol
    (d / "in.zarr" / "c" / "3" / "0" / "0").unlink()  # a neighbour of section 2
    with pytest.raises(ValueError, match="section 3 is missing from the store"):
        read_stack(d / "in.zarr")[3]
    np.testing.assert_array_equal(read_stack(d / "in.zarr")[4], stack[4])  # the rest reads
    code = cli.main(["repair", str(d / "in.zarr"), "-m", str(d / "m.zarr"), "-o",
                     str(d / "o.zarr"), "--stages", STAGES_FAST, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "section 3 is missing from the store (no chunk c/3/0/0)" in err, err
    assert "Traceback" not in err
    assert not (d / "o.zarr").exists() and _hidden(d) == []
    assert cli.main(["detect", str(d / "in.zarr"), "-o", str(d / "det.zarr"),
                     "--no-progress"]) == 2
    assert "section 3 is missing" in capsys.readouterr().err


def test_a_mask_is_read_sparsely_and_outputs_store_blank_sections(vol):
    import zarr

    d, stack, masks = vol
    sparse = zarr.create_array(store=str(d / "sparse.zarr"), shape=masks.shape,
                               chunks=(1, 64, 64), dtype=np.uint8)
    sparse[2] = masks[2]  # zarr does not store the empty sections' chunks
    assert not (d / "sparse.zarr" / "c" / "0").exists()
    blank = stack.copy()
    blank[7] = 0  # a blank section is stored, and reads back as data
    write_stack(d / "blank.zarr", blank)
    summary = repair_to_file(d / "blank.zarr", d / "sparse.zarr", d / "o.zarr", **FAST)
    out = read_stack(summary.output)
    np.testing.assert_array_equal(out[7], 0)
    np.testing.assert_array_equal(np.asarray(out)[masks == 0], blank[masks == 0])
    assert (d / "o.zarr" / "c" / "7" / "0" / "0").is_file()


# ----------------------------------------------------------------------------- left behind
@pytest.mark.parametrize("bad", [["--confidence", "{d}/c.png"],
                                 ["--weights", "{d}/bad.safetensors"]])
def test_a_failed_early_run_leaves_nothing_and_the_fix_runs(vol, bad, capsys):
    d, stack, masks = vol
    (d / "bad.safetensors").write_bytes(b"xx")
    argv = ["repair", str(d / "in.zarr"), "-m", str(d / "m.zarr"), "-o", str(d / "o.zarr"),
            "--no-progress"]
    assert cli.main([*argv, *(a.format(d=d) for a in bad)]) == 2
    assert _hidden(d) == [] and not (d / "o.zarr").exists()
    capsys.readouterr()
    assert cli.main([*argv, "--stages", STAGES_FAST, "--confidence", str(d / "c.tif")]) == 0, \
        capsys.readouterr().err
    out = np.asarray(read_stack(d / "o.zarr"))
    np.testing.assert_array_equal(out[masks == 0], stack[masks == 0])


@pytest.mark.parametrize("out", ["o.tif", "o.zarr"])
def test_a_repair_failing_after_its_confidence_map_leaves_none_to_block_the_rerun(
        vol, out, monkeypatch, capsys):
    """The confidence map is complete before the output is: when the output then fails (a
    full disk), the map goes too, and the same command runs once there is room."""
    import errno

    from napari_flowinpaint.tasks.io import StackWriter

    d, stack, masks = vol
    real = StackWriter.commit

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if out.endswith(".tif"):
        monkeypatch.setattr(StackWriter, "commit", lambda self: full(self) if self.path.name
                            == out else real(self))
    else:
        monkeypatch.setattr(ResumableStore, "commit", full)
    argv = ["repair", str(d / "in.zarr"), "-m", str(d / "m.zarr"), "-o", str(d / out),
            "--confidence", str(d / "c.tif"), "--no-progress", "--stages", STAGES_FAST]
    assert cli.main(argv) == 2
    assert "No space left" in capsys.readouterr().err
    assert not (d / "c.tif").exists() and not (d / out).exists() and _hidden(d) == []
    monkeypatch.undo()  # room again: the same command
    assert cli.main(argv) == 0, capsys.readouterr().err
    repaired = np.asarray(read_stack(d / out))
    np.testing.assert_array_equal(repaired[masks == 0], stack[masks == 0])
    conf = np.asarray(read_stack(d / "c.tif"))
    assert conf.shape == stack.shape and (conf[masks == 0] == 1).all()


@pytest.mark.parametrize("failure", ["OSError", "torch"])
@pytest.mark.parametrize("command", ["finetune-detector", "finetune"])
def test_finetune_on_a_full_disk_says_so_in_one_line_and_the_rerun_runs(
        tmp_path, command, failure, monkeypatch, capsys):
    """The first checkpoint fails (a full disk: an OSError, or torch's own "file write
    failed"): one line, exit 2, and once there is room the same command runs."""
    import errno

    import torch

    stack = moving_stack(8, (64, 64), dtype=np.uint8)
    write_stack(tmp_path / "in.tif", stack)
    real = torch.save

    def full(obj, f, *args, **kwargs):
        if failure == "OSError":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 "
                           "vs 0\nPytorchStreamWriter failed writing file data/0: file "
                           "write failed")

    monkeypatch.setattr(torch, "save", full)
    argv = [command, str(tmp_path / "in.tif"), "-o", str(tmp_path / "w.safetensors"),
            "--iterations", "2", "--held-out", "0.3"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "is the disk full?" in lines[0] and "checkpoint" in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "w.safetensors").exists()
    monkeypatch.setattr(torch, "save", real)  # room again
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert (tmp_path / "w.safetensors").is_file() and (tmp_path / "w.json").is_file()


def test_a_run_stopped_before_any_section_leaves_nothing(vol):
    d, *_ = vol
    with pytest.raises(KeyboardInterrupt):
        repair_to_file(d / "in.zarr", d / "m.zarr", d / "o.zarr", should_stop=lambda: True,
                       **FAST)
    assert _hidden(d) == [] and not (d / "o.zarr").exists()


def test_a_partial_store_with_nothing_finished_does_not_block_another_run(vol):
    d, stack, masks = vol
    ResumableStore(d / "o.zarr", stack.shape, stack.dtype, run={"command": "another"})
    assert _hidden(d) == [".o.zarr.partial.zarr"]  # killed before its first section
    summary = repair_to_file(d / "in.zarr", d / "m.zarr", d / "o.zarr", **FAST)
    out = np.asarray(read_stack(summary.output))
    np.testing.assert_array_equal(out[masks == 0], stack[masks == 0])
    assert summary.resumed == 0 and _hidden(d) == []


# ----------------------------------------------------------------------------- workers
def test_killed_main_process_takes_its_workers_with_it(tmp_path):
    import psutil

    big = moving_stack(24, (160, 160), dtype=np.uint8)
    masks = np.zeros(big.shape, np.uint8)
    masks[1:-1, 30:130, 40:120] = 1
    write_stack(tmp_path / "big.zarr", big)
    write_stack(tmp_path / "bigm.zarr", masks)
    argv = command("repair", tmp_path / "big.zarr", "-m", tmp_path / "bigm.zarr", "-o",
                   tmp_path / "o.zarr", "--workers", "2")
    proc, _ = start_until(argv, r"repair: [1-9]", timeout=180)
    workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
               if "spawn_main" in " ".join(p.cmdline())]
    assert len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    try:
        gone, alive = psutil.wait_procs(workers, timeout=20)
        assert alive == [], f"workers still running after their parent was killed: {alive}"
    finally:
        for p in workers:  # these tests' own processes, by pid
            if p.is_running():
                p.kill()


def test_resume_refuses_when_the_bundled_weights_changed(tmp_path, monkeypatch):
    """An update of the package between a run and its resume (other bundled weights) is not
    mixed into the output: the journal holds the bundled file's fingerprint too."""
    import shutil

    from napari_flowinpaint.engine.weights import bundled_weights_path
    from napari_flowinpaint.tasks.volume import repair_to_file

    stack = moving_stack(6, (48, 48))
    masks = np.zeros(stack.shape, np.uint8)
    masks[1:5, 10:30, 10:30] = 1
    inp = write_stack(tmp_path / "in.zarr", stack)
    mask = write_stack(tmp_path / "m.tif", masks)
    with pytest.raises(KeyboardInterrupt):
        repair_to_file(inp, mask, tmp_path / "o.zarr", should_stop=_stopper(1))
    other = tmp_path / "w" / "flowinpaint-cpu.safetensors"
    other.parent.mkdir()
    src = bundled_weights_path()
    shutil.copy(src, other)
    shutil.copy(src.with_suffix(".json"), other.with_suffix(".json"))
    with other.open("ab") as fh:  # the same networks, another file: another package version
        fh.write(b" ")
    monkeypatch.setenv("NAPARI_FLOWINPAINT_WEIGHTS", str(other))
    assert bundled_weights_path() == other
    with pytest.raises(FileExistsError, match="another run"):
        repair_to_file(inp, mask, tmp_path / "o.zarr")
