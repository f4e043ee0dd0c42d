"""Volumes read by URL (tasks.io.remote) and chunks missing from N5 and HDF5 files
(tasks.io.chunks). No network: a local HTTP server on 127.0.0.1 serves what the tests write."""

from __future__ import annotations

import functools
import json
import re
import socket
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import h5py
import numpy as np
import pytest
from _synth import moving_stack

from napari_flowinpaint.tasks import cli
from napari_flowinpaint.tasks.io import read_stack, read_voxel_size, remote, write_stack
from napari_flowinpaint.tasks.io.formats import absolute_source, resolved_source, with_format
from napari_flowinpaint.tasks.provenance import read_provenance

VOXEL = (40.0, 5.0, 5.0)  # nm, (z, y, x)
FAST = ["--stages", "initial_reference", "--device", "cpu", "--workers", "1", "--no-progress"]


def _tensorstore():
    return pytest.importorskip("tensorstore")


def _write_volume(fmt, folder, data) -> str:
    """``data`` as an N5 dataset in a BigDataViewer container or as a precomputed volume
    that starts away from 0, one section per chunk, with :data:`VOXEL`; returns the local
    path of the dataset."""
    ts = _tensorstore()
    xyz, size = [float(v) for v in VOXEL[::-1]], list(data.shape[::-1])
    if fmt == "n5":
        level = folder / "vol.n5" / "setup0" / "timepoint0" / "s0"
        store = ts.open({"driver": "n5", "create": True,
                         "kvstore": {"driver": "file", "path": str(level)},
                         "metadata": {"dimensions": size, "blockSize": size[:2] + [1],
                                      "dataType": str(data.dtype),
                                      "compression": {"type": "gzip"}}}).result()
        store[...] = data.T
        attrs = json.loads((level / "attributes.json").read_text())
        attrs["pixelResolution"] = {"dimensions": xyz, "unit": "nm"}
        (level / "attributes.json").write_text(json.dumps(attrs))
        return str(level)
    store = ts.open({"driver": "neuroglancer_precomputed", "create": True,
                     "kvstore": {"driver": "file", "path": str(folder / "em") + "/"},
                     "multiscale_metadata": {"data_type": str(data.dtype), "num_channels": 1,
                                             "type": "image"},
                     "scale_metadata": {"size": size, "resolution": xyz, "encoding": "raw",
                                        "chunk_size": size[:2] + [1],
                                        "voxel_offset": [10, 20, 30]}}).result()
    store[...] = data.T[..., None]
    return str(folder / "em")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no line on stderr per request
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(folder, URL): a web server on 127.0.0.1 serving ``folder``, for the test's life."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    folder = tmp_path / "www"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _url(folder, base, local) -> str:
    return f"{base}/{local[len(str(folder)) + 1:]}"


@pytest.fixture
def data():
    return moving_stack(6, (24, 40), dtype=np.uint16)


# ---------------------------------------------------------------------------- by URL
@pytest.mark.parametrize("fmt", ["n5", "precomputed"])
def test_a_url_reads_as_the_local_copy(fmt, served, data):
    folder, base = served
    local = _write_volume(fmt, folder, data)
    url = _url(folder, base, local)
    spellings = ([url, url.rsplit("/", 1)[0]] if fmt == "n5"  # a pyramid's group: its s0
                 else [f"precomputed:{url}", f"precomputed://{url}/", with_format(url, fmt)])
    for path in spellings:
        stack, on_disk = read_stack(path), read_stack(local)
        assert (stack.shape, stack.dtype) == (on_disk.shape, on_disk.dtype) == (
            data.shape, data.dtype)
        assert read_voxel_size(path) == pytest.approx(VOXEL) == read_voxel_size(local)
        np.testing.assert_array_equal(stack[:], on_disk[:])
        np.testing.assert_array_equal(stack[4, 3:19, ::-3], data[4, 3:19, ::-3])
        assert str(stack.path).startswith(base)  # in error messages


def test_zarr_and_ome_zarr_by_url(served, data):
    _tensorstore()
    folder, base = served
    write_stack(folder / "a.zarr", data, voxel_size=VOXEL)
    write_stack(folder / "b.ome.zarr", data, voxel_size=VOXEL)
    for name in ("a.zarr", "b.ome.zarr"):
        stack = read_stack(f"{base}/{name}")
        np.testing.assert_array_equal(stack[:], data)
        assert read_voxel_size(f"{base}/{name}") == pytest.approx(VOXEL)
    chunk = next(p for p in (folder / "a.zarr").rglob("*") if p.is_file()
                 and p.parts[-4:] == ("c", "2", "0", "0"))
    chunk.unlink()  # as on disk: an error naming the section, a mask reads it as 0
    with pytest.raises(ValueError, match=r"^input '.*/a.zarr': section 2 is missing from the "
                                         r"store \(no chunk .*/a.zarr/c/2/0/0\)"):
        read_stack(f"{base}/a.zarr", name="input")[2]
    assert not read_stack(f"{base}/a.zarr", sparse=True)[2].any()


@pytest.mark.parametrize("fmt", ["n5", "precomputed"])
def test_repair_of_a_url_is_the_repair_of_the_local_copy(fmt, served, data, tmp_path):
    folder, base = served
    local = _write_volume(fmt, folder, data)
    url = _url(folder, base, local)
    masks = np.zeros(data.shape, np.uint8)
    masks[2, 6:16, 10:24] = 1
    mask = write_stack(tmp_path / "mask.tif", masks)
    given = [url] if fmt == "n5" else [url, "--format", "precomputed"]
    assert cli.main(["repair", *given, "-m", str(mask), "-o", str(tmp_path / "u.zarr"),
                     *FAST]) == 0
    assert cli.main(["repair", local, "-m", str(mask), "-o", str(tmp_path / "l.zarr"),
                     *FAST]) == 0
    by_url, by_file = read_stack(tmp_path / "u.zarr")[:], read_stack(tmp_path / "l.zarr")[:]
    np.testing.assert_array_equal(by_url, by_file)
    assert not np.array_equal(by_url[2], data[2])  # repaired, the rest copied
    np.testing.assert_array_equal(np.delete(by_url, 2, 0), np.delete(data, 2, 0))
    assert read_voxel_size(tmp_path / "u.zarr") == pytest.approx(VOXEL)
    record = read_provenance(tmp_path / "u.zarr")["input"]  # the URL as it is
    assert record["path"] == (url if fmt == "n5" else f"precomputed:{url}")
    assert record["size_bytes"] is None and record["shape"] == list(data.shape)


def test_urls_in_the_journal_and_for_the_cluster_stay_urls():
    for url in ("https://example.org/vol.n5/s0", "precomputed:gs://bucket/em",
                "s3://bucket/a.zarr"):
        assert absolute_source(url) == resolved_source(url) == url


def test_url_errors_are_one_clear_line(served, tmp_path, monkeypatch, capsys):
    folder, base = served
    url = _url(folder, base, _write_volume("n5", folder, moving_stack(4, (16, 16))))
    out = str(tmp_path / "o.tif")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/vol.n5"
    monkeypatch.setattr(remote, "RETRIES", {"max_retries": 1, "initial_delay": "10ms",
                                            "max_delay": "10ms"})
    cases = [
        (["detect", closed, "-o", out], rf"input '{closed}' could not be reached"),
        (["detect", f"{base}/em", "-o", out], r"cannot tell the format of .* --format "
                                              r"n5\|precomputed\|zarr"),
        (["detect", f"{base}/vol.n5", "-o", out], r"names no N5 dataset .* give the "
                                                  r"dataset's URL"),
        (["detect", url, "--format", "hdf5", "-o", out], r"a URL is read as n5, precomputed, "
                                                         r"zarr only, not hdf5"),
        (["detect", url, "-o", f"{base}/o.zarr"], r"is a URL: outputs are written to "
                                                  r"local disk only"),
        (["repair", url, "-m", url, "-o", f"precomputed://{base}/out"],
         r"is a URL: outputs are written"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert re.search(message, err), err
    monkeypatch.setitem(sys.modules, "tensorstore", None)
    with pytest.raises(ImportError, match=r"pip install 'napari-flowinpaint\[tensorstore\]'.*"
                                          r"volumes by URL"):
        read_stack(f"{base}/a.zarr")


# ------------------------------------------------------------------ chunks missing
def test_a_chunk_missing_from_an_n5_is_an_error_naming_the_section(served, data, tmp_path,
                                                                   capsys):
    folder, base = served
    local = _write_volume("n5", folder, data)
    (folder / "vol.n5/setup0/timepoint0/s0/0/0/3").unlink()  # section 3's only chunk
    for path in (local, _url(folder, base, local)):
        stack = read_stack(path, name="input")
        for key in (3, -3, np.s_[3, 2:9], np.s_[1:5]):
            with pytest.raises(ValueError, match=rf"^input '{path}': section 3 is missing "
                                                 r"from the store \(no chunk .*s0/0/0/3\): N5 "
                                                 r"would read it as the fill value 0"):
                stack[key]
        np.testing.assert_array_equal(stack[4], data[4])  # the others read
        assert not read_stack(path, sparse=True)[3].any()  # a mask leaves empty chunks out
    masks = np.zeros(data.shape, np.uint8)
    masks[2, 4:8, 4:8] = 1  # section 3 is its neighbour
    mask = write_stack(tmp_path / "m.tif", masks)
    assert cli.main(["repair", local, "-m", str(mask), "-o", str(tmp_path / "o.zarr"),
                     *FAST]) == 2
    err = capsys.readouterr().err
    assert f"input '{local}': section 3 is missing from the store" in err, err
    assert err.count("\n") == 1 and not (tmp_path / "o.zarr").exists()


def test_an_hdf5_chunk_never_written_is_an_error_naming_the_section(data, tmp_path, capsys):
    file = tmp_path / "sample.h5"
    with h5py.File(file, "w") as f:
        raw = f.create_dataset("volumes/raw", shape=data.shape, dtype=data.dtype,
                               chunks=(1, 12, 20), compression="gzip")
        for z in range(data.shape[0]):
            if z != 3:
                raw[z] = data[z]
        raw[3, :12] = data[3, :12]  # section 3 half written: one of its chunks never is
        f.create_dataset("never", shape=(4, 8, 8), dtype=np.uint8)  # contiguous, unwritten
    path = f"{file}:/volumes/raw"
    stack = read_stack(path, name="input")
    for key in (3, np.s_[2:5, :4]):
        with pytest.raises(ValueError, match=rf"^input '{path}': section 3 is missing from "
                                             r"the file \(no chunk at \(3, 12, 0\), at "
                                             r"\(3, 12, 20\)\): HDF5 would read it as the "
                                             r"fill value 0"):
            stack[key]
    np.testing.assert_array_equal(stack[4], data[4])
    np.testing.assert_array_equal(stack[0:3], data[0:3])
    mask = read_stack(path, sparse=True)  # a mask: never written reads as 0
    np.testing.assert_array_equal(mask[3, 12:], 0)
    with pytest.raises(ValueError, match=r"section 0 is missing from the file \(no chunk "
                                         r"\(the whole dataset: it was never written\)\)"):
        read_stack(f"{file}:/never")[0]
    masks = np.zeros(data.shape, np.uint8)
    masks[1, 4:8, 4:8] = 1
    mask_file = write_stack(tmp_path / "m.tif", masks)
    assert cli.main(["repair", path, "-m", str(mask_file), "-o", str(tmp_path / "o.tif"),
                     *FAST]) == 2
    err = capsys.readouterr().err
    assert f"input '{path}': section 3 is missing from the file" in err, err
    assert err.count("\n") == 1 and not (tmp_path / "o.tif").exists()
