"""The vEM formats read besides TIFF and zarr (tasks.io.formats): a folder of sections, HDF5,
MRC and big (Big)TIFF, each read lazily, with its voxel size, by read_stack, the command line
and napari's File > Open."""

from __future__ import annotations

import json
import struct
import sys
import tracemalloc

import h5py
import mrcfile
import numpy as np
import pytest
import tifffile
from _synth import moving_stack
from PIL import Image

from napari_flowinpaint.tasks import cli
from napari_flowinpaint.tasks.io import read_stack, read_voxel_size, stacks, write_stack

VOXEL = (50.0, 4.0, 4.0)  # nm, (z, y, x)


def _write(fmt, folder, data, voxel=VOXEL) -> str:
    """``data`` written in ``fmt`` under ``folder``, with ``voxel`` where the format keeps
    one; returns the path read_stack takes."""
    if fmt in ("tif folder", "png folder"):
        sections = folder / fmt.replace(" ", "_")
        sections.mkdir()
        for z, section in enumerate(data):  # unpadded numbers: natural order, not lexical
            if fmt == "tif folder":
                tifffile.imwrite(sections / f"section_{z + 1}.tif", section)
            else:
                Image.fromarray(section).save(sections / f"section_{z + 1}.png")
        return str(sections)
    if fmt == "hdf5":  # laid out as CREMI's files are
        with h5py.File(folder / "sample.h5", "w") as f:
            raw = f.create_dataset("volumes/raw", data=data, chunks=(1, *data.shape[1:]),
                                   compression="gzip")
            raw.attrs["resolution"] = voxel
            f.create_dataset("volumes/labels/neuron_ids", data=data.astype(np.uint64))
        return f"{folder / 'sample.h5'}:/volumes/raw"
    if fmt == "mrc":
        with mrcfile.new(folder / "stack.mrc") as mrc:
            mrc.set_data(data)
            mrc.voxel_size = tuple(v * 10 for v in voxel[::-1])  # x, y, z in angstrom
        return str(folder / "stack.mrc")
    if fmt == "bigtiff":
        tifffile.imwrite(folder / "big.tif", data, bigtiff=True)
        return str(folder / "big.tif")
    if fmt == "big tif":  # an ImageJ TIFF with its voxel size, over the in-memory limit
        return str(write_stack(folder / "big_ij.tif", data, voxel_size=voxel))
    if fmt in ("n5", "precomputed"):
        return _write_tensorstore(fmt, folder, data, voxel)
    raise AssertionError(fmt)


def _write_tensorstore(fmt, folder, data, voxel) -> str:
    """An N5 pyramid (s0, s1) as BigDataViewer writes it, or a precomputed volume that starts
    away from 0: both list their axes x first, and keep one section per chunk."""
    ts = pytest.importorskip("tensorstore")
    xyz, size = [float(v) for v in voxel[::-1]], list(data.shape[::-1])
    if fmt == "n5":
        for level in ("s0", "s1"):
            store = ts.open({"driver": "n5", "create": True,
                             "kvstore": {"driver": "file",
                                         "path": str(folder / f"vol.n5/setup0/timepoint0/{level}")},
                             "metadata": {"dimensions": size, "blockSize": size[:2] + [1],
                                          "dataType": str(data.dtype),
                                          "compression": {"type": "gzip"}}}).result()
            store[...] = data.T
        attrs = folder / "vol.n5/setup0/timepoint0/s0/attributes.json"
        meta = json.loads(attrs.read_text())
        attrs.write_text(json.dumps({**meta, "pixelResolution": {"dimensions": xyz,
                                                                  "unit": "nm"}}))
        return str(folder / "vol.n5")
    store = ts.open({"driver": "neuroglancer_precomputed", "create": True,
                     "kvstore": {"driver": "file", "path": str(folder / "precomputed") + "/"},
                     "multiscale_metadata": {"data_type": str(data.dtype), "num_channels": 1,
                                             "type": "image"},
                     "scale_metadata": {"size": size, "resolution": xyz, "encoding": "raw",
                                        "chunk_size": size[:2] + [1],
                                        "voxel_offset": [100, 200, 300]}}).result()
    store[...] = data.T[..., None]
    return str(folder / "precomputed")


FORMATS = ("tif folder", "png folder", "hdf5", "mrc", "bigtiff", "big tif", "n5",
           "precomputed")
KEEPS_VOXEL = {"hdf5", "mrc", "big tif", "n5", "precomputed"}
#: where the reads are not numpy's memory (tensorstore's C++): laziness checked by removing
#: every chunk but one section's
UNTRACED = {"n5", "precomputed"}


@pytest.fixture
def small_limit(monkeypatch):
    """TIFFs over 4 kB count as big (read lazily): what a stack over SMALL_BYTES gets."""
    monkeypatch.setattr(stacks, "SMALL_BYTES", 4096)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_lazily_with_the_voxel_size(fmt, tmp_path, small_limit):
    data = moving_stack(12, (40, 48), dtype=np.uint16)
    path = _write(fmt, tmp_path, data)
    stack = read_stack(path)
    assert not isinstance(stack, np.ndarray)  # lazy
    assert stack.shape == data.shape and stack.dtype == data.dtype and stack.ndim == 3
    np.testing.assert_array_equal(np.asarray(stack), data)
    np.testing.assert_array_equal(stack[10], data[10])  # section_11 after section_2
    np.testing.assert_array_equal(stack[2:9:3, 5:20, -7:], data[2:9:3, 5:20, -7:])
    np.testing.assert_array_equal(stack[-1, ..., 3], data[-1, ..., 3])
    voxel = read_voxel_size(path)
    assert voxel == (pytest.approx(VOXEL) if fmt in KEEPS_VOXEL else None)


@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - UNTRACED))
def test_reading_one_section_reads_only_that_section(fmt, tmp_path, small_limit):
    """A 12 MB stack: opening it and reading one section allocates about that section
    (128 kB), while reading it whole allocates the whole."""
    data = moving_stack(96, (256, 256), dtype=np.uint16)
    path = _write(fmt, tmp_path, data)
    tracemalloc.start()
    try:
        stack = read_stack(path)
        np.testing.assert_array_equal(stack[40], data[40])
        _, one = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        np.asarray(stack[:])
        _, whole = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert one < 2 * data[0].nbytes + (1 << 20) < data.nbytes <= whole


@pytest.mark.parametrize("fmt", sorted(UNTRACED))
def test_tensorstore_reads_only_the_chunks_of_a_section(fmt, tmp_path):
    data = moving_stack(8, (32, 40), dtype=np.uint16)
    stack = read_stack(_write(fmt, tmp_path, data))
    # N5: s0/X/Y/Z; precomputed: SCALE/x0-x1_y0-y1_z0-z1 (z from 300)
    level = tmp_path / ("vol.n5/setup0/timepoint0/s0" if fmt == "n5" else "precomputed")
    chunks = [p for p in level.rglob("*") if p.is_file()
              and p.name not in ("attributes.json", "info")]
    assert len(chunks) == 8  # one per section
    for chunk in chunks:  # every other section's chunk is garbage now
        if chunk.name not in ("3", "100-140_200-232_303-304"):
            chunk.write_bytes(b"garbage")
    np.testing.assert_array_equal(stack[3], data[3])
    np.testing.assert_array_equal(stack[3, 5:9, ::-3], data[3, 5:9, ::-3])
    with pytest.raises(ValueError, match="could not read section 4"):
        stack[4]


def test_n5_container_names_its_dataset_or_lists_them(tmp_path, monkeypatch, capsys):
    data = moving_stack(4, (16, 16))
    container = _write("n5", tmp_path, data)  # one pyramid: its s0
    assert read_stack(container).path.name == "s0"
    np.testing.assert_array_equal(read_stack(f"{container}/setup0/timepoint0/s1")[:], data)
    _write_tensorstore("n5", tmp_path / "vol.n5" / "setup1", data, VOXEL)
    with pytest.raises(ValueError, match=r"several 3-D datasets: setup0/timepoint0/s0 4x16x16;"
                                         r".*setup1/vol.n5/setup0/timepoint0/s1 4x16x16"):
        read_stack(container)
    monkeypatch.setitem(sys.modules, "tensorstore", None)
    with pytest.raises(ImportError, match=r"pip install 'napari-flowinpaint\[tensorstore\]'"):
        read_stack(f"{container}/setup0/timepoint0/s0")
    out = tmp_path / "o.tif"
    assert cli.main(["detect", f"{container}/setup0/timepoint0/s0", "-o", str(out)]) == 2
    assert "pip install 'napari-flowinpaint[tensorstore]'" in capsys.readouterr().err


def test_a_folder_is_read_a_section_at_a_time(tmp_path):
    data = moving_stack(6, (32, 32))
    folder = _write("tif folder", tmp_path, data)
    stack = read_stack(folder)
    for z in (0, 1, 3, 4, 5):  # every other section is gone: reading section 2 still works
        (tmp_path / "tif_folder" / f"section_{z + 1}.tif").write_bytes(b"gone")
    np.testing.assert_array_equal(stack[2], data[2])
    with pytest.raises(ValueError, match="could not read section 3"):
        stack[3]


def test_folder_of_sections_of_different_sizes_is_refused(tmp_path):
    for z in range(4):
        tifffile.imwrite(tmp_path / f"{z:02d}.tif", np.zeros((64, 64 if z != 2 else 60),
                                                            np.uint8))
    with pytest.raises(ValueError, match=r"'02.tif' is 64 x 60 uint8, but the first, "
                                         r"'00.tif', is 64 x 64 uint8.*same size"):
        read_stack(tmp_path)
    (tmp_path / "02.tif").unlink()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "rgb.tif")
    with pytest.raises(ValueError, match="'rgb.tif'.*RGB.*greyscale"):
        read_stack(tmp_path)
    (tmp_path / "rgb.tif").unlink()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="mixes TIFF and PNG"):
        read_stack(tmp_path)
    (tmp_path / "a.png").unlink()
    (tmp_path / "00.tif").write_bytes(b"not a TIFF")
    with pytest.raises(ValueError, match="'00.tif' could not be read as a TIFF image"):
        read_stack(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no .tif/.tiff or .png image"):
        read_stack(empty, name="mask")


def test_ambiguous_or_wrong_dataset_lists_what_the_file_holds(tmp_path):
    data = moving_stack(4, (16, 16))
    path = _write("hdf5", tmp_path, data)
    file = path.split(":/")[0]
    with h5py.File(file, "a") as f:
        f.create_dataset("annotations/ids", data=np.arange(3))
    listing = (r"/volumes/labels/neuron_ids 4x16x16 uint64; /volumes/raw 4x16x16 uint8")
    with pytest.raises(ValueError, match=f"several 3-D datasets: {listing}.*Name the one"):
        read_stack(file)
    with pytest.raises(ValueError, match=f"no dataset '/volumes/nope'.*{listing}"):
        read_stack(f"{file}:/volumes/nope")
    with pytest.raises(ValueError, match="several 3-D datasets"):
        read_voxel_size(file)
    # a group holding one 3-D dataset, or a file holding one, is enough
    np.testing.assert_array_equal(read_stack(f"{file}:/volumes/labels")[:], data)
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f["stack"] = data
        f["stack"].attrs["element_size_um"] = (0.05, 0.004, 0.004)
    np.testing.assert_array_equal(read_stack(tmp_path / "one.h5")[:], data)
    assert read_voxel_size(tmp_path / "one.h5") == pytest.approx(VOXEL)
    (tmp_path / "text.h5").write_text("no HDF5")
    with pytest.raises(ValueError, match="could not be opened as an HDF5 file"):
        read_stack(tmp_path / "text.h5")


def test_format_prefix_reads_a_file_whose_extension_hides_it(tmp_path):
    data = moving_stack(4, (16, 16))
    _write("hdf5", tmp_path, data)
    (tmp_path / "sample.h5").rename(tmp_path / "scan.bin")
    with pytest.raises(ValueError, match=r"cannot tell the format.*--format"):
        read_stack(tmp_path / "scan.bin")
    np.testing.assert_array_equal(read_stack(f"hdf5:{tmp_path / 'scan.bin'}:/volumes/raw")[:],
                                  data)
    _write("mrc", tmp_path, data.astype(np.uint16))
    (tmp_path / "stack.mrc").rename(tmp_path / "stack.dat")
    assert read_voxel_size(f"mrc:{tmp_path / 'stack.dat'}") == pytest.approx(VOXEL)
    np.testing.assert_array_equal(read_stack(f"mrc:{tmp_path / 'stack.dat'}")[:], data)


def test_mrc_bytes_are_unsigned_where_imod_says_so(tmp_path):
    data = moving_stack(4, (16, 16))  # uint8 with values over 127
    for stamp, flags, dtype in ((1146047817, 0, np.uint8), (1146047817, 1, np.int8),
                                (0, 0, np.int8)):
        path = tmp_path / f"{stamp}-{flags}.mrc"
        with mrcfile.new(path) as mrc:
            mrc.set_data(data.view(np.int8))  # mode 0, as IMOD writes bytes
        raw = bytearray(path.read_bytes())
        raw[152:160] = struct.pack("<ii", stamp, flags)
        path.write_bytes(bytes(raw))
        stack = read_stack(path)
        assert stack.dtype == dtype
        np.testing.assert_array_equal(stack[:].view(np.uint8), data)


# ------------------------------------------------------------------------ the command line

DAMAGED_Z = (1, 3)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A 5-section uint16 stack with holes in sections 1 and 3, its mask, and the repair of
    its TIFF by the command line: what every format must give."""
    tmp = tmp_path_factory.mktemp("reference")
    data = moving_stack(5, (64, 64), dtype=np.uint16)
    masks = np.zeros(data.shape, np.uint8)
    masks[1, 20:40, 18:44] = masks[3, 8:30, 30:56] = 1
    data[masks > 0] = 60000
    mask = write_stack(tmp / "mask.tif", masks)
    write_stack(tmp / "in.tif", data, voxel_size=VOXEL)
    assert cli.main(["repair", str(tmp / "in.tif"), "-m", str(mask), "-o",
                     str(tmp / "out.tif"), "--no-progress", "--workers", "1"]) == 0
    return data, mask, np.asarray(read_stack(tmp / "out.tif"))


@pytest.mark.parametrize("fmt", ["tif folder", "png folder", "hdf5", "mrc", "bigtiff", "n5",
                                 "precomputed"])
def test_repair_of_every_format_is_the_repair_of_its_tiff(fmt, damaged, tmp_path,
                                                          small_limit):
    data, mask, expected = damaged
    path = _write(fmt, tmp_path, data)
    out = tmp_path / "out.tif"
    assert cli.main(["repair", path, "-m", str(mask), "-o", str(out), "--no-progress",
                     "--workers", "1"]) == 0
    np.testing.assert_array_equal(np.asarray(read_stack(out)), expected)
    assert read_voxel_size(out) == (pytest.approx(VOXEL) if fmt in KEEPS_VOXEL else None)


def test_detect_and_auto_read_them_too(damaged, tmp_path):
    """``auto`` (detection, then repair) of an MRC file and of a folder of sections writes
    the same mask, report and repair as of the TIFF."""
    data = damaged[0]
    sources = {"tif": str(write_stack(tmp_path / "in.tif", data, voxel_size=VOXEL)),
               "mrc": _write("mrc", tmp_path, data),
               "folder": _write("tif folder", tmp_path, data)}
    for key, source in sources.items():
        assert cli.main(["auto", source, "-o", str(tmp_path / f"{key}.zarr"), "--no-progress",
                         "--workers", "1"]) == 0
    assert np.asarray(read_stack(tmp_path / "tif-damage.zarr"))[[1, 3]].any()  # found
    for key in ("mrc", "folder"):
        for suffix in (".zarr", "-damage.zarr"):
            np.testing.assert_array_equal(np.asarray(read_stack(tmp_path / f"{key}{suffix}")),
                                          np.asarray(read_stack(tmp_path / f"tif{suffix}")))
        assert ((tmp_path / f"{key}-report.csv").read_text()
                == (tmp_path / "tif-report.csv").read_text())


def test_format_option_of_the_commands(damaged, tmp_path, capsys):
    data, mask, expected = damaged
    _write("hdf5", tmp_path, data)
    (tmp_path / "sample.h5").rename(tmp_path / "scan.bin")
    source = f"{tmp_path / 'scan.bin'}:/volumes/raw"
    assert cli.main(["repair", source, "--format", "hdf5", "-m", str(mask), "-o",
                     str(tmp_path / "out.zarr"), "--no-progress", "--workers", "1"]) == 0
    np.testing.assert_array_equal(np.asarray(read_stack(tmp_path / "out.zarr")), expected)
    assert read_voxel_size(tmp_path / "out.zarr") == pytest.approx(VOXEL)
    assert cli.main(["repair", source, "-m", str(mask), "-o", str(tmp_path / "o.tif"),
                     "--no-progress"]) == 2
    assert "--format" in capsys.readouterr().err
    for command in ("detect", "auto"):
        with pytest.raises(SystemExit):
            cli.main([command, source, "--format", "netcdf", "-o", str(tmp_path / "x.tif")])
        assert "invalid choice: 'netcdf'" in capsys.readouterr().err


# ------------------------------------------------------------------------------- napari


@pytest.mark.gui
@pytest.mark.parametrize("fmt", ["hdf5", "mrc", "n5"])
def test_napari_opens_the_file_lazily_at_its_voxel_size(fmt, tmp_path, make_napari_viewer):
    pytest.importorskip("napari")
    import dask.array as da

    data = moving_stack(6, (32, 40), dtype=np.uint16)
    path = _write(fmt, tmp_path, data)
    file = path.split(":/")[0]  # File > Open gives the file
    viewer = make_napari_viewer()
    layers = viewer.open(file, plugin="napari-flowinpaint")
    names = {"hdf5": ["sample.h5:/volumes/labels/neuron_ids", "sample.h5:/volumes/raw"],
             "mrc": ["stack.mrc"], "n5": ["vol.n5"]}[fmt]
    assert [layer.name for layer in layers] == names  # every 3-D dataset of an HDF5 file
    layer = viewer.layers[names[-1]]
    assert isinstance(layer.data, da.Array) and layer.data.chunks[0] == (1,) * 6
    assert tuple(layer.scale) == pytest.approx(VOXEL)
    np.testing.assert_array_equal(np.asarray(layer.data[4]), data[4])
    from napari_flowinpaint.gui import napari_get_reader

    assert napari_get_reader(str(tmp_path / "a.tif")) is None  # napari reads TIFF itself
