import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from _synth import moving_stack

from napari_flowinpaint.tasks.io import (
    LazyStack,
    StackWriter,
    check_output_path,
    read_stack,
    read_voxel_size,
    write_stack,
)


class ExplodingStack:
    """A read-only stack whose section ``at`` raises ``exc`` when read (a write that fails
    half-way, or Ctrl-C in the middle)."""

    def __init__(self, data, at, exc):
        self.data, self.at, self.exc = data, at, exc
        self.shape, self.dtype = data.shape, data.dtype

    def __getitem__(self, z):
        if z == self.at:
            raise self.exc
        return self.data[z]


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("ext", ["tif", "tiff", "zarr"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_round_trip_keeps_data_and_dtype(tmp_path, ext, dtype):
    stack = moving_stack(4, (24, 40), dtype=dtype)
    path = write_stack(tmp_path / f"s.{ext}", stack)
    back = read_stack(path)
    assert back.dtype == dtype and back.shape == (4, 24, 40)
    np.testing.assert_array_equal(np.asarray(back), stack)
    assert _listing(tmp_path) == [f"s.{ext}"]  # no temporary left behind


def test_tiff_is_read_into_memory_and_zarr_lazily(tmp_path):
    stack = moving_stack(3, (16, 16))
    assert isinstance(read_stack(write_stack(tmp_path / "a.tif", stack)), np.ndarray)
    lazy = read_stack(write_stack(tmp_path / "a.zarr", stack))
    assert isinstance(lazy, LazyStack) and isinstance(lazy.array, zarr.Array)
    np.testing.assert_array_equal(lazy[1], stack[1])


@pytest.mark.parametrize("ext", ["tif", "zarr"])
def test_voxel_size_round_trip(tmp_path, ext):
    path = write_stack(tmp_path / f"v.{ext}", moving_stack(3, (16, 16)),
                       voxel_size=(40.0, 10.0, 5.0))
    assert read_voxel_size(path) == pytest.approx((40.0, 10.0, 5.0))


def test_voxel_size_unknown_is_none(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, moving_stack(3, (16, 16)), photometric="minisblack")
    assert read_voxel_size(path) is None


def test_zarr_group_with_one_array_and_path_inside_store(tmp_path):
    stack = moving_stack(3, (16, 16))
    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    group.create_array("raw", data=stack)
    np.testing.assert_array_equal(read_stack(tmp_path / "g.zarr")[:], stack)
    group.create_array("labels", data=stack > 100)
    with pytest.raises(ValueError, match=r"several arrays \(labels, raw\).*g.zarr/labels"):
        read_stack(tmp_path / "g.zarr")
    np.testing.assert_array_equal(read_stack(tmp_path / "g.zarr" / "raw")[:], stack)


def test_read_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match=r"\.png.*supported: \.tif, \.tiff, \.zarr"):
        read_stack(tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_stack(tmp_path / "missing.tif")
    tifffile.imwrite(tmp_path / "flat.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(8, 8\); expected a 3-D stack"):
        read_stack(tmp_path / "flat.tif", name="mask")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match="could not be read as a TIFF"):
        read_stack(tmp_path / "bad.tif")
    with pytest.raises(ValueError, match="3-D"):
        write_stack(tmp_path / "two_d.tif", np.zeros((8, 8), np.uint8))
    assert sorted(os.listdir(tmp_path)) == ["bad.tif", "flat.tif"]


@pytest.mark.parametrize("ext", ["tif", "zarr"])
@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failed_write_leaves_nothing_behind(tmp_path, ext, exc):
    source = ExplodingStack(moving_stack(5, (32, 32)), at=3, exc=exc)
    with pytest.raises(type(exc)):
        write_stack(tmp_path / f"out.{ext}", source)
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("ext", ["tif", "zarr"])
@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failed_overwrite_keeps_the_old_output(tmp_path, ext, exc):
    old = moving_stack(5, (32, 32), seed=1)
    write_stack(tmp_path / f"out.{ext}", old)
    with pytest.raises(type(exc)):
        write_stack(tmp_path / f"out.{ext}", ExplodingStack(old[::-1], at=2, exc=exc),
                    overwrite=True)
    assert _listing(tmp_path) == [f"out.{ext}"]
    np.testing.assert_array_equal(np.asarray(read_stack(tmp_path / f"out.{ext}")), old)


def test_failed_rename_restores_the_old_zarr(tmp_path, monkeypatch):
    old = moving_stack(3, (16, 16), seed=1)
    write_stack(tmp_path / "out.zarr", old)
    real_rename = os.rename

    def rename(src, dst):
        if ".partial" in str(src):  # moving the finished temporary into place fails
            raise OSError("simulated failure")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="simulated"):
        write_stack(tmp_path / "out.zarr", old[::-1], overwrite=True)
    assert _listing(tmp_path) == ["out.zarr"]
    np.testing.assert_array_equal(read_stack(tmp_path / "out.zarr")[:], old)


@pytest.mark.parametrize("ext", ["tif", "zarr"])
def test_overwrite_replaces_and_cleans_up(tmp_path, ext):
    write_stack(tmp_path / f"out.{ext}", moving_stack(5, (32, 32), seed=1))
    new = moving_stack(3, (16, 20), seed=2, dtype=np.uint16)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_stack(tmp_path / f"out.{ext}", new)
    write_stack(tmp_path / f"out.{ext}", new, overwrite=True)
    assert _listing(tmp_path) == [f"out.{ext}"]
    back = np.asarray(read_stack(tmp_path / f"out.{ext}"))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, new)


def test_refuses_to_write_onto_an_input(tmp_path, monkeypatch):
    stack = moving_stack(3, (16, 16))
    src = write_stack(tmp_path / "in.tif", stack)
    monkeypatch.chdir(tmp_path)
    for target in (src, "in.tif", tmp_path / "sub" / ".." / "in.tif"):
        with pytest.raises(ValueError, match="refusing to write the output onto the input"):
            check_output_path(target, protect=[src], overwrite=True)
    (tmp_path / "link.tif").symlink_to(src)
    with pytest.raises(ValueError, match="onto the input"):
        write_stack(tmp_path / "link.tif", stack, protect=[src], overwrite=True)
    # a zarr array inside the input store, or a store containing the input, is refused too
    store = write_stack(tmp_path / "in.zarr", stack)
    with pytest.raises(ValueError, match="onto the input"):
        check_output_path(store / "inner.zarr", protect=[store])
    np.testing.assert_array_equal(read_stack(src), stack)


def test_output_checks(tmp_path):
    with pytest.raises(ValueError, match=r"\.png"):  # PNG sections: 'out/*.png'
        check_output_path(tmp_path / "out.png")
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        check_output_path(tmp_path / "no" / "out.tif")
    assert check_output_path(tmp_path / "out.tif") == tmp_path / "out.tif"


def test_stack_writer_writes_zarr_slices_as_they_come(tmp_path):
    base = moving_stack(4, (16, 16))
    new = 255 - base
    with StackWriter(tmp_path / "out.zarr", base.shape, base.dtype, base=base) as out:
        out[2] = new[2]
        tmp = out.tmp
        assert tmp.exists()
        assert tmp.name.startswith(".out-") and tmp.name.endswith(".partial.zarr")
        # the section is already in the temporary store; the destination does not exist yet
        np.testing.assert_array_equal(zarr.open_array(tmp, mode="r")[2], new[2])
        assert not (tmp_path / "out.zarr").exists()
    result = read_stack(tmp_path / "out.zarr")[:]
    np.testing.assert_array_equal(result[2], new[2])
    np.testing.assert_array_equal(result[[0, 1, 3]], base[[0, 1, 3]])
    assert _listing(tmp_path) == ["out.zarr"]


@pytest.mark.parametrize("ext", ["tif", "zarr"])
def test_stack_writer_aborts_on_interrupt(tmp_path, ext):
    base = moving_stack(4, (16, 16))
    with pytest.raises(KeyboardInterrupt):
        with StackWriter(tmp_path / f"out.{ext}", base.shape, base.dtype, base=base) as out:
            out[0] = base[1]
            raise KeyboardInterrupt
    assert _listing(tmp_path) == []


def test_stack_writer_checks_sections(tmp_path):
    with StackWriter(tmp_path / "o.tif", (2, 8, 8), np.uint8) as out:
        with pytest.raises(ValueError, match=r"shape \(8, 9\), expected \(8, 8\)"):
            out[0] = np.zeros((8, 9))
        with pytest.raises(IndexError, match="outside the stack"):
            out[2] = np.zeros((8, 8))
        out[1] = np.full((8, 8), 7)
    back = read_stack(tmp_path / "o.tif")
    assert back[0].max() == 0 and (back[1] == 7).all()


def test_ome_zarr_round_trip_with_pyramid_and_voxel_size(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    stack = moving_stack(3, (600, 520))
    path = write_stack(tmp_path / "s.ome.zarr", stack, voxel_size=(40.0, 8.0, 8.0))
    back = read_stack(path)
    np.testing.assert_array_equal(np.asarray(back), stack)
    assert read_voxel_size(path) == pytest.approx((40.0, 8.0, 8.0))
    node = list(Reader(parse_url(str(path)))())[0]  # what napari-ome-zarr reads
    assert [d.shape for d in node.data] == [(3, 600, 520), (3, 300, 260)]
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales == [[40.0, 8.0, 8.0], [40.0, 16.0, 16.0]]
    level1 = np.asarray(node.data[1][1])
    assert abs(float(level1.mean()) - float(stack[1].mean())) < 0.01 * float(stack[1].mean())
    assert _listing(tmp_path) == ["s.ome.zarr"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_reads_ome_ngff_of_both_versions_with_singleton_channel(tmp_path, version):
    import zarr
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image

    stack = moving_stack(4, (48, 40))
    fmt = FormatV04() if version == "0.4" else FormatV05()
    group = zarr.open_group(str(tmp_path / "in.ome.zarr"), mode="w",
                            zarr_format=2 if version == "0.4" else 3)
    write_image(stack[None], group, axes="czyx", fmt=fmt, scale_factors=(),
                scale={"z": 0.05, "y": 0.004, "x": 0.004},
                axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"})
    back = read_stack(tmp_path / "in.ome.zarr")
    assert back.shape == (4, 48, 40)
    np.testing.assert_array_equal(back[2], stack[2])
    assert read_voxel_size(tmp_path / "in.ome.zarr") == pytest.approx((50.0, 4.0, 4.0))


def test_ome_zarr_with_several_channels_is_refused(tmp_path):
    import zarr
    from ome_zarr.writer import write_image

    group = zarr.open_group(str(tmp_path / "c.ome.zarr"), mode="w")
    write_image(np.zeros((2, 3, 16, 16), np.uint8), group, axes="czyx", scale_factors=())
    with pytest.raises(ValueError, match="2 elements along its 'c' axis"):
        read_stack(tmp_path / "c.ome.zarr")


def test_section_range_reads_only_what_is_indexed():
    from napari_flowinpaint.tasks.io import SectionRange

    stack = np.arange(5 * 4 * 3).reshape(5, 4, 3)
    view = SectionRange(stack, 1, 4)
    assert view.shape == (3, 4, 3) and len(view) == 3 and view.dtype == stack.dtype
    np.testing.assert_array_equal(view[0], stack[1])
    np.testing.assert_array_equal(view[-1, 1:3], stack[3, 1:3])
    with pytest.raises(IndexError, match="outside the range of 3"):
        view[3]
    with pytest.raises(TypeError, match="an int first"):
        view[0:2]
    assert SectionRange(stack, 3, 99).shape[0] == 2
