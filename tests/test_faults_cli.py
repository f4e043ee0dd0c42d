"""Rough edges of the command line (issue 26): outputs checked before any work, advice that
fits the command, paths that reach a cluster's workers, two runs onto one output, multi-page
TIFFs written page by page.

Each case asserts the exit code, a key phrase of the one error line, and what is left on
disk (inputs unchanged, nothing half-written).
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from _synth import moving_stack

from napari_flowinpaint.tasks import cli
from napari_flowinpaint.tasks.io import write_stack

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
    assert _tree(folder) == before  # no mask, no report, nothing hidden


def test_auto_on_a_blank_stack_gives_advice_auto_can_follow(folder, capsys):
    assert cli.main(["auto", folder / "blank.tif", "-o", folder / "b.tif", "--no-progress",
                     "--stages", STAGES_FAST]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "have no usable neighbour" in line
    assert "--slices" not in line.split("napari-flowinpaint repair")[0]  # auto has none
    assert f"napari-flowinpaint repair {folder / 'blank.tif'} --mask" in line
    assert not (folder / "b.tif").exists()
