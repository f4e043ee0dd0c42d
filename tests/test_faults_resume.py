"""Faults of reuse: nothing stale is reused, nothing is left behind or left running.

Resumed runs and ``auto`` reuse work only when it provably belongs to the data and options
of this run (content fingerprints); every case that could go silently wrong asserts the
output against the input outside the mask. Inputs with missing zarr chunks are refused,
failed runs leave no partial store that blocks the next one, and local workers end with
their parent.
"""

import signal

import numpy as np
import pytest
from _cli import command, start_until
from _synth import moving_stack

from napari_flowinpaint.tasks import cli
from napari_flowinpaint.tasks.io import read_stack, write_stack
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
