"""The vEM formats as outputs (tasks.io.targets, tasks.io.sinks): HDF5, a folder of sections
(TIFF or PNG) and MRC, written by the command line and the API with the guarantees of TIFF
and zarr (atomic, never onto an input, --overwrite to replace), read back by read_stack
with their dtype and voxel size."""

from __future__ import annotations

import json

import h5py
import mrcfile
import numpy as np
import pytest
import tifffile
from _synth import CountingStack, moving_stack

from napari_flowinpaint.tasks import cli
from napari_flowinpaint.tasks.io import StackWriter, read_stack, read_voxel_size, write_stack
from napari_flowinpaint.tasks.io.sinks import FolderSink
from napari_flowinpaint.tasks.io.targets import output_target, stack_file, written_stack
from napari_flowinpaint.tasks.outputs import lock_path
from napari_flowinpaint.tasks.volume import repair_to_file

VOXEL = (50.0, 4.0, 4.0)  # nm, (z, y, x)
#: every new output format: the path given to -o
OUTPUTS = ["out.h5", "out.h5:/volumes/repaired", "sections/", "sections/z_*.png", "out.mrc"]


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _at(folder, out) -> str:
    """``folder/out`` as text: a Path would drop the '/' that makes ``out/`` a folder."""
    return f"{folder}/{out}"


def _repair(*args) -> int:
    return cli.main(["repair", *map(str, args), "--no-progress", "--workers", "1"])


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A 5-section uint16 stack (with its voxel size) with holes in sections 1 and 3, its
    mask, and the TIFF path's repair and confidence map: what every output must hold."""
    tmp = tmp_path_factory.mktemp("reference")
    data = moving_stack(5, (48, 56), dtype=np.uint16)
    masks = np.zeros(data.shape, np.uint8)
    masks[1, 14:30, 12:40] = masks[3, 6:24, 24:50] = 1
    data[masks > 0] = 60000
    source, mask = tmp / "in.tif", tmp / "mask.tif"
    write_stack(source, data, voxel_size=VOXEL)
    write_stack(mask, masks)
    assert _repair(source, "-m", mask, "-o", tmp / "out.tif", "--confidence",
                   tmp / "conf.tif") == 0
    return source, mask, read_stack(tmp / "out.tif"), read_stack(tmp / "conf.tif")


@pytest.mark.parametrize("out", OUTPUTS)
def test_repair_into_each_format_is_the_tiff_repair(out, damaged, tmp_path):
    source, mask, expected, confidence = damaged
    conf = "conf.h5" if out.endswith(".h5") else "conf/" if out.endswith("/") else "conf.mrc"
    assert _repair(source, "-m", mask, "-o", _at(tmp_path, out), "--confidence",
                   _at(tmp_path, conf)) == 0
    back = read_stack(written_stack(_at(tmp_path, out)))
    assert back.shape == expected.shape and back.dtype == np.uint16
    np.testing.assert_array_equal(back[:], expected)
    assert read_voxel_size(written_stack(_at(tmp_path, out))) == pytest.approx(VOXEL)
    kept = read_stack(written_stack(_at(tmp_path, conf)))
    assert kept.dtype == np.float32
    np.testing.assert_array_equal(kept[:], confidence)
    assert not [n for n in _listing(tmp_path) if n.startswith(".")]  # no temporary left


def test_hdf5_output_is_laid_out_as_cremi(damaged, tmp_path):
    """One gzip chunk per section, the voxel size as the dataset's ``resolution`` (nm, z y x)
    and ``element_size_um``; the default dataset is volumes/raw; a description and other
    attributes are the dataset's attributes."""
    source, mask, expected, _ = damaged
    assert _repair(source, "-m", mask, "-o", tmp_path / "out.h5") == 0
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert list(f) == ["volumes"] and list(f["volumes"]) == ["raw"]
        ds = f["volumes/raw"]
        assert ds.chunks == (1, *expected.shape[1:]) and ds.compression == "gzip"
        np.testing.assert_array_equal(ds.attrs["resolution"], VOXEL)
        np.testing.assert_allclose(ds.attrs["element_size_um"], np.array(VOXEL) / 1000)
    record = {"repaired": [1, 3], "engine": {"stages": 3}}
    write_stack(tmp_path / "a.h5:/em/data", expected, description="licence: CC-BY",
                attributes={"provenance": record, "level": 0, "scale": [1.0, 2.0]})
    with h5py.File(tmp_path / "a.h5", "r") as f:
        attrs = f["em/data"].attrs
        assert attrs["description"] == "licence: CC-BY" and attrs["level"] == 0
        assert json.loads(attrs["provenance"]) == record
        np.testing.assert_array_equal(attrs["scale"], [1.0, 2.0])
        assert "resolution" not in attrs  # no voxel size given: none made up


def test_folder_output_names_and_metadata(damaged, tmp_path):
    """Zero-padded names in z order, ImageJ voxel size in each TIFF (Fiji's image sequence),
    stack.json with the voxel size, description and attributes; a folder that lost its
    stack.json still gives the voxel size, from its first TIFF."""
    expected = damaged[2]
    write_stack(_at(tmp_path, "s/"), expected, voxel_size=VOXEL, description="repaired",
                attributes={"run": {"sections": [1, 3]}})
    assert _listing(tmp_path / "s") == [f"{z:04d}.tif" for z in range(5)] + ["stack.json"]
    meta = json.loads((tmp_path / "s" / "stack.json").read_text())
    assert meta["voxel_size"] == list(VOXEL) and meta["description"] == "repaired"
    assert meta["attributes"] == {"run": {"sections": [1, 3]}}
    with tifffile.TiffFile(tmp_path / "s" / "0002.tif") as tif:
        assert tif.imagej_metadata["spacing"] == VOXEL[0]
        np.testing.assert_array_equal(tif.asarray(), expected[2])
    (tmp_path / "s" / "stack.json").unlink()
    assert read_voxel_size(tmp_path / "s") == pytest.approx(VOXEL)
    many = FolderSink(tmp_path / "many", "z_*.png", (12001, 2, 3), np.dtype(np.uint8),
                      voxel_size=None)  # more sections than 4 digits hold: 5 digits
    assert many.names[:2] == ["z_00000.png", "z_00001.png"] and many.names[-1] == "z_12000.png"
    assert many.names == sorted(many.names)  # z order is also the names' plain order


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float32])
def test_mrc_keeps_dtype_voxel_size_and_statistics(dtype, tmp_path):
    data = (moving_stack(4, (20, 24), dtype=np.float32) * 200).astype(dtype)
    write_stack(tmp_path / "v.mrc", data, voxel_size=VOXEL, description="repaired\nline 2")
    back = read_stack(tmp_path / "v.mrc")
    assert back.dtype == dtype
    np.testing.assert_array_equal(back[:], data)
    assert read_voxel_size(tmp_path / "v.mrc") == pytest.approx(VOXEL)
    with mrcfile.open(tmp_path / "v.mrc", permissive=True) as mrc:
        h = mrc.header
        assert (float(h.dmin), float(h.dmax)) == (data.min(), data.max())
        assert float(h.dmean) == pytest.approx(data.mean(), rel=1e-5)
        assert float(h.rms) == pytest.approx(data.astype(np.float64).std(), rel=1e-4)
        assert mrc.get_labels()[-1].strip() == "repaired"


def test_formats_that_cannot_hold_the_dtype_are_refused_before_any_work(tmp_path):
    data = moving_stack(5, (32, 32), dtype=np.float32).astype(np.float64)
    write_stack(tmp_path / "in.tif", data)
    with pytest.raises(TypeError, match="MRC, which holds"):
        write_stack(tmp_path / "o.mrc", data)
    with pytest.raises(TypeError, match=r"PNG sections.*'.*/\*\.tif'"):
        write_stack(tmp_path / "o/*.png", data.astype(np.float32))
    # auto checks the repaired stack's format before the detection: no mask is made
    assert cli.main(["auto", str(tmp_path / "in.tif"), "-o", str(tmp_path / "o.mrc"),
                     "--no-progress", "--workers", "1"]) == 2
    assert _listing(tmp_path) == ["in.tif"]


@pytest.mark.parametrize("out", ["o.h5:/x", "o/", "o/*.png", "o.mrc"])
def test_an_interrupted_write_leaves_no_half_output(out, tmp_path):
    data = moving_stack(4, (16, 16))
    with pytest.raises(KeyboardInterrupt):
        with StackWriter(_at(tmp_path, out), data.shape, data.dtype, base=data) as writer:
            writer[0] = data[1]
            assert writer.tmp.exists() and writer.tmp.name.startswith(".o-")
            raise KeyboardInterrupt
    assert _listing(tmp_path) == []

    class Failing:  # the input fails to be read while the output is being filled in
        shape, dtype, ndim = data.shape, data.dtype, 3

        def __getitem__(self, z):
            if z == 2:
                raise OSError(5, "Input/output error")
            return data[z]

    with pytest.raises(OSError, match="nothing was left behind"):
        write_stack(_at(tmp_path, out), Failing())
    assert _listing(tmp_path) == []


def test_a_stopped_repair_leaves_no_output(damaged, tmp_path):
    source, mask, _, _ = damaged
    for out in ("o.h5", "o/"):
        with pytest.raises(KeyboardInterrupt):
            repair_to_file(source, mask, f"{tmp_path}/{out}", should_stop=lambda: True)
    assert _listing(tmp_path) == []


def test_an_existing_output_is_replaced_only_with_overwrite(damaged, tmp_path, capsys):
    source, mask, expected, _ = damaged
    for out in ("old.h5:/volumes/raw", "old/"):
        write_stack(_at(tmp_path, out), np.zeros_like(expected))
        assert _repair(source, "-m", mask, "-o", _at(tmp_path, out)) == 2
        assert "already exists" in capsys.readouterr().err
        assert not read_stack(written_stack(_at(tmp_path, out)))[:].any()  # untouched
        assert _repair(source, "-m", mask, "-o", _at(tmp_path, out), "--overwrite") == 0
        np.testing.assert_array_equal(read_stack(written_stack(_at(tmp_path, out)))[:], expected)
    # a dataset is never added to an HDF5 file that exists: the file is the output
    assert _repair(source, "-m", mask, "-o", f"{tmp_path}/old.h5:/volumes/more") == 2
    assert "a file of its own" in capsys.readouterr().err
    # --overwrite never deletes a folder holding more than sections
    (tmp_path / "old" / "notes.txt").write_text("keep me")
    assert _repair(source, "-m", mask, "-o", f"{tmp_path}/old/", "--overwrite") == 2
    assert "holds more than section images ('notes.txt')" in capsys.readouterr().err
    assert (tmp_path / "old" / "notes.txt").read_text() == "keep me"


def test_an_output_onto_its_input_is_refused(damaged, tmp_path, capsys):
    source, mask, expected, _ = damaged
    data = read_stack(source)
    write_stack(tmp_path / "in.h5:/volumes/raw", data, voxel_size=VOXEL)
    write_stack(_at(tmp_path, "sections/"), data)
    before = (tmp_path / "in.h5").read_bytes()
    for src, out in (("in.h5:/volumes/raw", "in.h5:/volumes/repaired"),
                     ("in.h5:/volumes/raw", "in.h5"), ("sections", "sections/"),
                     ("sections", "sections/*.png")):
        assert _repair(f"{tmp_path}/{src}", "-m", mask, "-o", f"{tmp_path}/{out}",
                       "--overwrite") == 2
        assert "refusing to write the output onto the input" in capsys.readouterr().err
    assert (tmp_path / "in.h5").read_bytes() == before
    np.testing.assert_array_equal(read_stack(tmp_path / "sections")[:], data)


def test_auto_and_detect_write_them_too(damaged, tmp_path):
    """``auto -o rep.h5:/volumes/repaired --mask masks/``: the mask as a folder of sections,
    the report named after the HDF5 file; ``detect -o`` into HDF5 writes the same mask."""
    source = damaged[0]
    assert cli.main(["auto", str(source), "-o", f"{tmp_path}/rep.h5:/volumes/repaired",
                     "--mask", f"{tmp_path}/masks/", "--no-progress", "--workers", "1"]) == 0
    assert (tmp_path / "rep-report.csv").is_file()
    found = read_stack(tmp_path / "masks")
    assert found.dtype == np.uint8 and found[:][[1, 3]].any()
    repaired = read_stack(f"{tmp_path}/rep.h5:/volumes/repaired")
    assert read_voxel_size(f"{tmp_path}/rep.h5") == pytest.approx(VOXEL)
    expected = repair_to_file(source, tmp_path / "masks", tmp_path / "check.tif").output
    np.testing.assert_array_equal(repaired[:], read_stack(expected))
    assert cli.main(["detect", str(source), "-o", str(tmp_path / "d.h5"), "--grow", "2",
                     "--no-progress", "--workers", "1"]) == 0
    np.testing.assert_array_equal(read_stack(tmp_path / "d.h5")[:], found[:])


def test_output_paths_name_their_file():
    assert output_target("a/b.h5") == ("hdf5", stack_file("a/b.h5"), "volumes/raw")
    assert output_target("b.h5:/x/y").inner == "x/y"
    assert output_target("out/") == ("folder", stack_file("out"), "*.tif")
    assert output_target("out/s_*.PNG").inner == "s_*.PNG"
    for bad in ("out/*.jpg", "out/a*b*.tif", "out/*x.png"):
        with pytest.raises(ValueError, match="pattern of section names"):
            output_target(bad)
    with pytest.raises(ValueError, match=r"end the path with '/' \(out/\)"):
        output_target("out")
    # one lock per file, whatever the dataset or the pattern
    assert lock_path("o.h5:/a") == lock_path("o.h5:/b") == lock_path("o.h5")
    assert lock_path("out/") == lock_path("out/*.png") == lock_path("out")


@pytest.mark.parametrize("out", ["o.h5", "o/", "o/*.png", "o.mrc"])
def test_a_big_stack_is_written_a_section_at_a_time(out, tmp_path):
    """The output takes a section at a time: never the whole stack in memory (an MRC is not
    written through a memory map, whose pages count as this process's memory)."""
    import tracemalloc

    data = moving_stack(64, (128, 128), dtype=np.uint16)
    lazy = CountingStack(data)  # refuses to be read whole
    write_stack(_at(tmp_path, f"warm-up{out[1:]}"), data[:2, :8, :8])  # imports, caches
    tracemalloc.start()
    try:
        write_stack(_at(tmp_path, out), lazy, voxel_size=VOXEL)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lazy.reads == [1] * 64
    assert peak < data.nbytes / 4, peak
    np.testing.assert_array_equal(read_stack(written_stack(_at(tmp_path, out)))[:], data)
