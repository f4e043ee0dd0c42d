"""Whole volumes: parallel repair and detection on dask, resumable zarr outputs, ``auto``.

Small volumes only; the dask clusters are LocalClusters started by the tests.
"""

import signal
import subprocess

import numpy as np
import pytest
from _cli import ENV, command, start_until
from _synth import moving_stack

from napari_flowinpaint.tasks import cli
from napari_flowinpaint.tasks.io import read_stack, read_voxel_size, write_stack
from napari_flowinpaint.tasks.volume import repair_to_file
from napari_flowinpaint.tasks.volume_detect import auto_to_file, detect_to_file

FAST = dict(stages="initial_reference", device="cpu")


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    d = tmp_path_factory.mktemp("vol")
    stack = moving_stack(12, (96, 96), dtype=np.uint8)
    masks = np.zeros(stack.shape, np.uint8)
    for z in (2, 5, 6, 9):
        masks[z, 20 + z:60, 10:70 - z] = 1
    damaged = stack.copy()
    damaged[masks == 1] = 255
    write_stack(d / "in.zarr", damaged, voxel_size=(40.0, 8.0, 8.0))
    write_stack(d / "in.tif", damaged)
    write_stack(d / "m.zarr", masks)
    return d, stack, damaged, masks


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("out", ["o.zarr", "o.tif", "o.ome.zarr"])
def test_two_workers_give_the_same_output_as_one(volume, tmp_path, out):
    d, _, damaged, masks = volume
    one = repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / f"one-{out}", workers=1,
                         **FAST)
    two = repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / f"two-{out}", workers=2,
                         **FAST)
    a, b = np.asarray(read_stack(one.output)), np.asarray(read_stack(two.output))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[masks == 0], damaged[masks == 0])
    assert (a[masks == 1] != 255).mean() > 0.95  # the white holes are filled
    assert one.repaired == two.repaired == [2, 5, 6, 9]
    assert _hidden(tmp_path) == []
    if out.endswith(".zarr"):
        assert read_voxel_size(two.output) == pytest.approx((40.0, 8.0, 8.0))


def test_an_existing_dask_cluster_gives_the_same_output(volume, tmp_path, capsys):
    from distributed import LocalCluster

    d, *_ = volume
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        code = cli.main(["repair", str(d / "in.zarr"), "-m", str(d / "m.zarr"), "-o",
                         str(tmp_path / "c.zarr"), "--scheduler", cluster.scheduler_address,
                         "--stages", "initial_reference", "--no-progress"])
    assert code == 0
    local = repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "l.zarr", **FAST)
    np.testing.assert_array_equal(np.asarray(read_stack(tmp_path / "c.zarr")),
                                  np.asarray(read_stack(local.output)))
    assert "dask dashboard" in capsys.readouterr().err


def test_an_unreachable_scheduler_is_one_clear_error(volume, tmp_path, capsys):
    d, *_ = volume
    code = cli.main(["repair", str(d / "in.zarr"), "-m", str(d / "m.zarr"), "-o",
                     str(tmp_path / "c.zarr"), "--scheduler", "tcp://127.0.0.1:9",
                     "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the dask scheduler" in err
    assert list(tmp_path.iterdir()) == []


def test_stopped_repair_resumes_to_the_same_output(volume, tmp_path):
    d, *_ = volume
    calls = []
    with pytest.raises(KeyboardInterrupt):
        repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "o.zarr",
                       should_stop=lambda: calls.append(1) or len(calls) > 3, **FAST)
    assert _hidden(tmp_path) == [".o.zarr.partial.zarr"] and not (tmp_path / "o.zarr").exists()
    resumed = repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "o.zarr", **FAST)
    assert resumed.resumed == 3 and _hidden(tmp_path) == []
    fresh = repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "f.zarr", **FAST)
    np.testing.assert_array_equal(np.asarray(read_stack(resumed.output)),
                                  np.asarray(read_stack(fresh.output)))


def test_a_partial_output_of_another_run_is_not_mixed_in(volume, tmp_path):
    d, *_ = volume
    calls = []
    with pytest.raises(KeyboardInterrupt):
        repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "o.zarr",
                       should_stop=lambda: calls.append(1) or len(calls) > 2, **FAST)
    with pytest.raises(FileExistsError, match="partial output of another run"):
        repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "o.zarr", max_distance=2,
                       **FAST)
    repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "o.zarr", max_distance=2,
                   overwrite=True, **FAST)
    assert _hidden(tmp_path) == []


def test_killed_run_resumes_to_the_same_output(volume, tmp_path):
    d, *_ = volume
    big = moving_stack(40, (192, 192), dtype=np.uint8)
    masks = np.zeros(big.shape, np.uint8)
    masks[1:-1, 30:150, 40:160] = 1
    write_stack(tmp_path / "big.zarr", big)
    write_stack(tmp_path / "bigm.zarr", masks)
    argv = command("repair", tmp_path / "big.zarr", "-m", tmp_path / "bigm.zarr", "-o",
                   tmp_path / "o.zarr", "--workers", "1")
    proc, _ = start_until(argv, r"repair: [3-9]")
    proc.send_signal(signal.SIGKILL)  # nothing can clean up: the journal says what is done
    proc.wait(timeout=30)
    assert _hidden(tmp_path) == [".o.zarr.partial.zarr"] and not (tmp_path / "o.zarr").exists()
    res = subprocess.run([*argv, "--no-progress"], capture_output=True, text=True, env=ENV,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert "resuming:" in res.stderr
    fresh = repair_to_file(tmp_path / "big.zarr", tmp_path / "bigm.zarr", tmp_path / "f.zarr")
    np.testing.assert_array_equal(np.asarray(read_stack(tmp_path / "o.zarr")),
                                  np.asarray(read_stack(fresh.output)))


def test_detection_in_blocks_and_parallel_equals_one_pass(volume, tmp_path):
    from napari_flowinpaint import detect_damage

    d, _, damaged, _ = volume
    rows = detect_to_file(d / "in.zarr", tmp_path / "m1.zarr", report=tmp_path / "r1.csv")
    two = detect_to_file(d / "in.zarr", tmp_path / "m2.zarr", report=tmp_path / "r2.csv",
                         workers=2)
    assert rows == two
    expected = detect_damage(damaged)
    np.testing.assert_array_equal(np.asarray(read_stack(tmp_path / "m2.zarr")) > 0, expected)
    assert (tmp_path / "r1.csv").read_text() == (tmp_path / "r2.csv").read_text()
    assert {r["z"] for r in rows if r["flagged"]} >= {2, 5, 6, 9}


def test_stopped_detection_resumes(volume, tmp_path):
    d, *_ = volume
    calls = []
    with pytest.raises(KeyboardInterrupt):
        detect_to_file(d / "in.zarr", tmp_path / "m.zarr", report=tmp_path / "r.csv",
                       should_stop=lambda: calls.append(1) or True)
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "m.zarr").exists()
    resumed = detect_to_file(d / "in.zarr", tmp_path / "m.zarr", report=tmp_path / "r.csv")
    fresh = detect_to_file(d / "in.zarr", tmp_path / "f.zarr")
    assert resumed == fresh
    np.testing.assert_array_equal(np.asarray(read_stack(tmp_path / "m.zarr")),
                                  np.asarray(read_stack(tmp_path / "f.zarr")))


def test_auto_detects_writes_the_mask_and_report_and_repairs(volume, tmp_path, capsys):
    d, stack, damaged, masks = volume
    code = cli.main(["auto", str(d / "in.zarr"), "-o", str(tmp_path / "fixed.ome.zarr"),
                     "--stages", "initial_reference", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "repaired" in out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["fixed-damage.zarr", "fixed-damage.zarr.provenance.json",
                     "fixed-qc.html", "fixed-report.csv", "fixed.ome.zarr",
                     "fixed.ome.zarr.provenance.json"]
    fixed = np.asarray(read_stack(tmp_path / "fixed.ome.zarr"))
    found = np.asarray(read_stack(tmp_path / "fixed-damage.zarr")) > 0
    assert found[masks == 1].mean() > 0.9  # the white holes were found
    where = (masks == 1) & found
    err_before = np.abs(damaged.astype(float) - stack)[where].mean()
    err_after = np.abs(fixed.astype(float) - stack)[where].mean()
    assert err_after < 0.35 * err_before  # where damage was found, it was repaired
    np.testing.assert_array_equal(fixed[~found], damaged[~found])


def test_auto_rejects_outputs_that_collide(volume, tmp_path):
    d, *_ = volume
    with pytest.raises(ValueError, match="same path"):
        auto_to_file(d / "in.zarr", tmp_path / "o.zarr", mask_output=tmp_path / "o.zarr")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("task", ["repair", "detect"])
def test_a_worker_keeps_to_its_share_of_the_cores(volume, monkeypatch, task):
    """torch and OpenCV (optical flow, warps) both follow FLOWINPAINT_WORKER_THREADS, in
    repair and detection tasks alike: two workers on two cores run two threads, not four."""
    import cv2
    import torch

    from napari_flowinpaint.tasks import volume_detect as vol
    from napari_flowinpaint.tasks.parallel import worker_engine

    d, _, damaged, _ = volume
    before = torch.get_num_threads(), cv2.getNumThreads()
    monkeypatch.setenv("FLOWINPAINT_WORKER_THREADS", "1")
    try:
        if task == "repair":
            worker_engine.__wrapped__((None, "cpu", "initial_reference", "dis", "textured"))
        else:
            vol._detect_task(damaged, [1], {}, (0.0, 255.0), None)
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (1, 1)
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def test_workers_default_to_the_cores_that_memory_allows(monkeypatch):
    import psutil

    from napari_flowinpaint.tasks import parallel

    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 8)
    free = type("Memory", (), {"available": 64 * parallel.WORKER_MEMORY})
    monkeypatch.setattr(psutil, "virtual_memory", lambda: free)
    assert parallel.choose_workers(None, 1000, seconds_per_mp=0.5) == 8  # a big job
    assert parallel.choose_workers(None, 10, seconds_per_mp=0.5) == 1  # 5 s: this process
    assert parallel.choose_workers(3, 1000, seconds_per_mp=0.5) == 3  # as asked
    free.available = 3.5 * parallel.WORKER_MEMORY  # room for 3 workers only
    assert parallel.choose_workers(None, 1000, seconds_per_mp=0.5) == 3
    free.available = 0
    assert parallel.choose_workers(None, 1000, seconds_per_mp=0.5) == 1
