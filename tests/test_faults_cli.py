"""Rough edges of the command line (issue 26): outputs checked before any work, advice that
fits the command, paths that reach a cluster's workers, two runs onto one output, multi-page
TIFFs written page by page.

Each case asserts the exit code, a key phrase of the one error line, and what is left on
disk (inputs unchanged, nothing half-written).
"""

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _cli import ENV, command, start_until
from _synth import moving_stack

from napari_flowinpaint.tasks import cli
from napari_flowinpaint.tasks.io import read_stack, write_stack
from napari_flowinpaint.tasks.outputs import lock_path

STAGES_FAST = "initial_reference"


def _tree(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` (hidden ones too), files with their SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "folder" for p in sorted(folder.rglob("*"))}


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def folder(tmp_path):
    """A stack, its mask and an all-blank stack."""
    stack = moving_stack(6, (64, 64), dtype=np.uint8)
    masks = np.zeros(stack.shape, np.uint8)
    masks[2, 20:40, 20:44] = 1
    write_stack(tmp_path / "in.tif", stack)
    write_stack(tmp_path / "m.tif", masks)
    write_stack(tmp_path / "blank.tif", np.zeros((6, 64, 64), np.uint8))
    return tmp_path


# ------------------------------------------------ outputs checked first, advice that fits
@pytest.mark.parametrize("argv", [
    ["auto", "{d}/in.tif", "-o", "{d}/a.png"],
    ["auto", "{d}/in.tif", "-o", "{d}/a.tif", "--mask", "{d}/mask.png"],
    ["detect", "{d}/in.tif", "-o", "{d}/d.png"],
    ["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o", "{d}/r.png"],
    ["repair", "{d}/in.tif", "-m", "{d}/m.tif", "-o", "{d}/r.tif", "--confidence",
     "{d}/c.png"],
])
def test_an_output_of_unknown_format_is_refused_before_any_work(folder, argv, capsys,
                                                                  monkeypatch):
    from napari_flowinpaint.tasks import volume, volume_detect

    def no_work(*args, **kwargs):
        raise AssertionError("the work started before the outputs were checked")

    monkeypatch.setattr(volume_detect, "detect_to_file", no_work)
    monkeypatch.setattr(volume, "repair_to_file", no_work)
    before = _tree(folder)
    argv = [a.format(d=folder) for a in argv] + ["--no-progress"]
    assert cli.main(argv) == 2
    line = _error_line(capsys.readouterr().err)
    assert "from its extension '.png'" in line and "supported: .tif, .tiff, .zarr" in line
    assert "'FOLDER/*.png'" in line  # how to write PNG sections
    assert _tree(folder) == before  # no mask, no report, nothing hidden


def test_auto_on_a_blank_stack_gives_advice_auto_can_follow(folder, capsys):
    assert cli.main(["auto", folder / "blank.tif", "-o", folder / "b.tif", "--no-progress",
                     "--stages", STAGES_FAST]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "have no usable neighbour" in line
    assert "--slices" not in line.split("napari-flowinpaint repair")[0]  # auto has none
    assert f"napari-flowinpaint repair {folder / 'blank.tif'} --mask" in line
    assert not (folder / "b.tif").exists()


# ------------------------------------------------ --scheduler with relative paths
class _FarClient:
    """Stands for a dask cluster whose workers run in a folder of their own: each task runs
    here, at once, with the current folder changed to ``elsewhere``; what is sent is kept."""

    elsewhere: Path | None = None
    sent: list = []

    def __init__(self, address, timeout=None):
        self.dashboard_link = "http://fake:8787/status"

    def submit(self, function, *args, pure=True):
        import os
        from concurrent.futures import Future

        type(self).sent.append(args)
        future, here = Future(), os.getcwd()
        os.chdir(self.elsewhere)
        try:
            future.set_result(function(*args))
        except Exception as exc:
            future.set_exception(exc)
        finally:
            os.chdir(here)
        return future

    def close(self):
        pass


def _strings(value):
    if isinstance(value, str | Path):
        yield str(value)
    elif isinstance(value, tuple | list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


@pytest.mark.parametrize("argv", [
    ["auto", "in.tif", "-o", "out.zarr"],
    ["repair", "in.tif", "-m", "m.tif", "-o", "out.tif", "--confidence", "c.zarr"],
    ["detect", "in.tif", "-o", "d.zarr", "--report", "r.csv"],
])
def test_relative_paths_reach_the_workers_of_a_cluster(folder, argv, tmp_path_factory,
                                                       monkeypatch, capsys):
    import concurrent.futures

    import distributed

    monkeypatch.setattr(_FarClient, "elsewhere", tmp_path_factory.mktemp("worker"))
    monkeypatch.setattr(_FarClient, "sent", [])
    monkeypatch.setattr(distributed, "Client", _FarClient)
    monkeypatch.setattr(distributed, "as_completed", concurrent.futures.as_completed)
    monkeypatch.chdir(folder)
    stack = read_stack(folder / "in.tif")
    code = cli.main([*argv, "--scheduler", "tcp://10.0.0.5:8786", "--no-progress",
                     *(["--stages", STAGES_FAST] if argv[0] != "detect" else [])])
    assert code == 0, capsys.readouterr().err
    paths = [s for args in _FarClient.sent for s in _strings(args)
             if s.endswith((".tif", ".zarr", ".csv"))]
    assert paths and all(Path(p).is_absolute() for p in paths), paths
    out = np.asarray(read_stack(folder / argv[argv.index("-o") + 1]))
    assert out.shape == stack.shape
    if argv[0] == "repair":
        masks = read_stack(folder / "m.tif")
        np.testing.assert_array_equal(out[masks == 0], stack[masks == 0])
    assert list(_FarClient.elsewhere.iterdir()) == []  # nothing written where workers run


def test_relative_paths_reach_the_workers_of_a_cluster_from_python(folder, tmp_path_factory,
                                                                   monkeypatch):
    # issue 26: the API callers too, not only the command line
    import concurrent.futures

    import distributed

    from napari_flowinpaint.tasks.volume import repair_to_file
    from napari_flowinpaint.tasks.volume_detect import detect_to_file

    monkeypatch.setattr(_FarClient, "elsewhere", tmp_path_factory.mktemp("worker"))
    monkeypatch.setattr(_FarClient, "sent", [])
    monkeypatch.setattr(distributed, "Client", _FarClient)
    monkeypatch.setattr(distributed, "as_completed", concurrent.futures.as_completed)
    monkeypatch.chdir(folder)
    repair_to_file("in.tif", Path("m.tif"), "api.zarr", scheduler="tcp://10.0.0.5:8786",
                   stages=STAGES_FAST, confidence="api-c.zarr")
    detect_to_file(Path("in.tif"), "api-d.zarr", report="api-r.csv",
                   scheduler="tcp://10.0.0.5:8786")
    paths = [s for args in _FarClient.sent for s in _strings(args)
             if s.endswith((".tif", ".zarr", ".csv"))]
    assert paths and all(Path(p).is_absolute() for p in paths), paths
    stack, masks = read_stack(folder / "in.tif"), read_stack(folder / "m.tif")
    out = np.asarray(read_stack(folder / "api.zarr"))
    np.testing.assert_array_equal(out[masks == 0], stack[masks == 0])
    assert (folder / "api-d.zarr").exists() and (folder / "api-r.csv").exists()
    assert list(_FarClient.elsewhere.iterdir()) == []  # nothing written where workers run


@pytest.mark.parametrize(("given", "made"), [
    ("in.tif", "{d}/in.tif"),
    ("sub/scan.h5:/volumes/raw", "{d}/sub/scan.h5:/volumes/raw"),
    ("scan.h5", "{d}/scan.h5"),
    ("hdf5:scan.bin:/raw", "hdf5:{d}/scan.bin:/raw"),
    ("mrc:scan.dat", "mrc:{d}/scan.dat"),
    ("/abs/in.zarr", "/abs/in.zarr"),
])
def test_absolute_source_keeps_the_format_and_the_dataset(tmp_path, monkeypatch, given, made):
    from napari_flowinpaint.tasks.io.formats import absolute_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "scan.bin").write_bytes(b"")
    assert absolute_source(given) == made.format(d=tmp_path)


# ------------------------------------------------ two runs onto one output
def test_a_second_run_onto_the_same_output_is_refused_while_the_first_runs(tmp_path):
    stack = moving_stack(60, (256, 256), dtype=np.uint8)
    masks = np.zeros(stack.shape, np.uint8)
    masks[1:-1, 40:200, 30:220] = 1
    write_stack(tmp_path / "in.tif", stack)
    write_stack(tmp_path / "m.tif", masks)
    before = _tree(tmp_path)
    argv = command("repair", tmp_path / "in.tif", "-m", tmp_path / "m.tif", "-o",
                   tmp_path / "out.zarr", "--workers", "1")
    first, seen = start_until(argv, r"repair: [1-9]")  # its repairs are under way
    try:
        second = subprocess.run([*argv, "--no-progress"], capture_output=True, text=True,
                                env=ENV, timeout=300)
        assert first.poll() is None, "the first run ended before the second was refused"
    finally:
        first.terminate()
        _, rest = first.communicate(timeout=300)
    assert second.returncode == 2, second.stderr
    line = _error_line(second.stderr)
    assert f"another run (pid {first.pid}) is writing" in line and "out.zarr" in line
    assert "Errno" not in line
    assert first.returncode == 143, seen + rest  # the first one was not disturbed
    assert "run the same command again to continue" in rest
    hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert hidden == [".out.zarr.partial.zarr"]  # its finished sections
    assert not lock_path(tmp_path / "out.zarr").exists()  # the lock went with the run
    after = _tree(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before


def test_the_lock_of_a_killed_run_is_taken_over(folder, capsys):
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock = lock_path(folder / "out.tif")
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(f"{dead.pid} {__import__('socket').gethostname()}\n")
    assert cli.main(["repair", folder / "in.tif", "-m", folder / "m.tif", "-o",
                     folder / "out.tif", "--stages", STAGES_FAST, "--no-progress"]) == 0, \
        capsys.readouterr().err
    assert (folder / "out.tif").is_file()
    assert not lock.exists()  # taken over, then removed at the end


def test_a_lock_held_by_a_live_run_is_respected_and_left_alone(folder, capsys):
    import os
    import socket

    lock = lock_path(folder / "sub" / ".." / "d.zarr")  # any spelling of the output
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(f"{os.getppid()} {socket.gethostname()}\n")  # a process that runs
    before = _tree(folder)
    assert cli.main(["detect", folder / "in.tif", "-o", folder / "d.zarr",
                     "--no-progress"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"another run (pid {os.getppid()}) is writing" in line
    assert "delete the lock file" in line
    assert _tree(folder) == before  # no output begun
    assert lock.read_text() == f"{os.getppid()} {socket.gethostname()}\n"  # left alone
    lock.unlink()


# ------------------------------------------------ TIFFs written page by page
def _write_pages(path, pages):
    import tifffile

    with tifffile.TiffWriter(path) as tif:
        for page in pages:
            tif.write(page)  # each page a series of its own


@pytest.mark.parametrize("lazy", [False, True])
def test_a_tiff_written_page_by_page_is_read_as_its_stack(folder, lazy, monkeypatch, capsys):
    from napari_flowinpaint.tasks.io import stacks

    stack = read_stack(folder / "in.tif")
    if lazy:  # as a big file is: a page read when indexed
        monkeypatch.setattr(stacks, "SMALL_BYTES", 0)
    _write_pages(folder / "pages.tif", stack)
    read = read_stack(folder / "pages.tif", name="input")
    assert read.shape == stack.shape and read.dtype == stack.dtype
    assert isinstance(read, np.ndarray) != lazy
    np.testing.assert_array_equal(np.asarray(read), stack)
    np.testing.assert_array_equal(read[2], stack[2])
    np.testing.assert_array_equal(read[1:4, 5:9], stack[1:4, 5:9])
    before = _tree(folder)
    assert cli.main(["repair", folder / "pages.tif", "-m", folder / "m.tif", "-o",
                     folder / "out.tif", "--stages", STAGES_FAST, "--no-progress"]) == 0, \
        capsys.readouterr().err
    out, masks = (np.asarray(read_stack(folder / f)) for f in ("out.tif", "m.tif"))
    np.testing.assert_array_equal(out[masks == 0], stack[masks == 0])
    assert (out[masks == 1] != stack[masks == 1]).any()  # repaired, not copied
    assert {k: v for k, v in _tree(folder).items() if k in before} == before


@pytest.mark.parametrize(("page", "said"), [
    (np.zeros((32, 64), np.uint8), "page 3 is 32 x 64 uint8, but page 0 is 64 x 64 uint8"),
    (np.zeros((64, 64), np.uint16), "page 3 is 64 x 64 uint16, but page 0 is 64 x 64 uint8"),
])
def test_pages_of_different_sizes_or_types_are_named(folder, page, said, capsys):
    stack = read_stack(folder / "in.tif")
    _write_pages(folder / "odd.tif", [stack[0], stack[1], stack[2], page, stack[4]])
    before = _tree(folder)
    assert cli.main(["detect", folder / "odd.tif", "-o", folder / "d.tif",
                     "--no-progress"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "holds 5 pages written one by one that differ" in line and said in line, line
    assert "single 2-D image" not in line
    assert _tree(folder) == before
