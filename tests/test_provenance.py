"""The record of what was changed (tasks.provenance): in every output of repair, detect and
auto, embedded (zarr attributes, TIFF description) and in a sidecar, right after a resumed
or parallel run."""

import hashlib
import json

import numpy as np
import pytest
import tifffile
import zarr
from _synth import moving_stack

from napari_flowinpaint import __version__
from napari_flowinpaint.engine.weights import bundled_detector_path, bundled_weights_path
from napari_flowinpaint.tasks.io import write_stack
from napari_flowinpaint.tasks.provenance import (
    ATTRIBUTE,
    parse_description,
    read_provenance,
    sidecar_path,
)
from napari_flowinpaint.tasks.volume import repair_to_file
from napari_flowinpaint.tasks.volume_detect import detect_to_file

FAST = dict(stages="initial_reference", device="cpu")
HOLES = {2: (slice(10, 30), slice(8, 40)), 5: (slice(20, 44), slice(4, 20))}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("prov")
    stack = moving_stack(8, (48, 48), dtype=np.uint8)
    masks = np.zeros(stack.shape, np.uint8)
    for z, (ys, xs) in HOLES.items():
        masks[z, ys, xs] = 1
    damaged = np.where(masks > 0, 255, stack).astype(np.uint8)
    write_stack(d / "in.tif", damaged, voxel_size=(30.0, 6.0, 6.0))
    write_stack(d / "m.tif", masks)
    write_stack(d / "in.zarr", damaged)
    write_stack(d / "m.zarr", masks)
    pixels = {z: int(masks[z].sum()) for z in HOLES}
    return d, pixels


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _embedded(path):
    """The record stored in the output itself, read without the package's reader."""
    if path.suffix == ".tif":
        with tifffile.TiffFile(path) as tif:
            return parse_description(tif.imagej_metadata["Info"])
    return dict(zarr.open(store=str(path), mode="r").attrs)[ATTRIBUTE]


@pytest.mark.parametrize("name", ["o.tif", "o.zarr", "o.ome.zarr"])
def test_every_output_format_carries_the_record(files, tmp_path, name):
    d, pixels = files
    out = tmp_path / name
    summary = repair_to_file(d / "in.tif", d / "m.tif", out, device="cpu", mode="faithful")
    sidecar = tmp_path / f"{name}.provenance.json"
    assert sidecar_path(out) == sidecar
    record = json.loads(sidecar.read_text())
    assert _embedded(out) == record == summary.provenance
    assert [(s["z"], s["damaged_pixels"]) for s in record["sections"]] == sorted(pixels.items())
    assert all(0 < s["mean_confidence"] <= 1 for s in record["sections"])
    assert record["summary"]["damaged_pixels"] == sum(pixels.values())
    bundled = bundled_weights_path()
    assert record["weights"]["name"] == bundled.name
    assert record["weights"]["sha256"] == _sha256(bundled)
    assert record["options"]["mode"] == "faithful"
    assert record["options"]["stages"] == record["options"]["method"] == "guided_inpainting"
    assert record["software"]["version"] == __version__
    assert record["mask"]["source"] == "file"
    assert record["mask"]["path"] == str((d / "m.tif").resolve())
    src = record["input"]
    assert src["path"] == str((d / "in.tif").resolve()) and src["shape"] == [8, 48, 48]
    assert src["dtype"] == "uint8" and src["voxel_size_nm"] == pytest.approx([30, 6, 6])
    assert src["size_bytes"] == (d / "in.tif").stat().st_size
    assert len(src["metadata_sha256"]) == 64
    assert record["output"] == {"path": str(out.absolute()), "kind": "repaired stack"}
    assert record["date"] and record["host"]
    sidecar.unlink()  # the record stored in the output is found without its sidecar
    assert read_provenance(out) == record


def test_the_input_checksum_follows_its_metadata(files, tmp_path):
    d, _ = files
    a = repair_to_file(d / "in.tif", d / "m.tif", tmp_path / "a.tif", **FAST).provenance
    b = repair_to_file(d / "in.tif", d / "m.tif", tmp_path / "b.tif", **FAST).provenance
    c = repair_to_file(d / "in.zarr", d / "m.tif", tmp_path / "c.tif", **FAST).provenance
    assert a["input"]["metadata_sha256"] == b["input"]["metadata_sha256"]
    assert a["input"]["metadata_sha256"] != c["input"]["metadata_sha256"]
    assert a["weights"] is None  # the optical flow alone: no weights were used
    assert a["options"]["stages"] == "initial_reference"


def test_a_confidence_map_carries_the_record_too(files, tmp_path):
    d, _ = files
    s = repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "o.zarr",
                       confidence=tmp_path / "c.tif", **FAST)
    conf = read_provenance(tmp_path / "c.tif")
    assert s.provenance["confidence_map"] == str(tmp_path / "c.tif")
    assert conf["output"]["kind"] == "confidence map"
    assert conf["sections"] == s.provenance["sections"]
    with tifffile.TiffFile(tmp_path / "c.tif") as tif:  # the old description is kept first
        assert tif.imagej_metadata["Info"].startswith("FlowInpaint repair confidence")


def test_a_resumed_run_records_the_sections_of_both_runs(files, tmp_path):
    d, pixels = files
    calls = []
    with pytest.raises(KeyboardInterrupt):
        repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "o.ome.zarr",
                       should_stop=lambda: calls.append(1) or len(calls) > 1, **FAST)
    assert not sidecar_path(tmp_path / "o.ome.zarr").exists()  # nothing before the output
    resumed = repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "o.ome.zarr", **FAST)
    fresh = repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "f.zarr", **FAST)
    record = read_provenance(tmp_path / "o.ome.zarr")
    assert resumed.resumed == 1 and record["summary"]["resumed_from_earlier_run"] == 1
    assert [(s["z"], s["damaged_pixels"]) for s in record["sections"]] == sorted(pixels.items())
    assert record["sections"] == fresh.provenance["sections"]  # the confidences too
    assert _embedded(tmp_path / "o.ome.zarr") == record


def test_parallel_workers_give_the_same_record(files, tmp_path):
    d, _ = files
    one = repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "one.tif", **FAST)
    two = repair_to_file(d / "in.zarr", d / "m.zarr", tmp_path / "two.zarr", workers=2, **FAST)
    assert two.provenance["sections"] == one.provenance["sections"]
    assert read_provenance(tmp_path / "two.zarr")["sections"] == one.provenance["sections"]


def test_a_detected_mask_carries_the_record_of_its_detection(files, tmp_path):
    d, pixels = files
    detect_to_file(d / "in.tif", tmp_path / "found.tif", grow=1)
    record = read_provenance(tmp_path / "found.tif")
    found = np.asarray(tifffile.imread(tmp_path / "found.tif"))
    assert record["command"] == "detect" and record["output"]["kind"] == "damage mask"
    assert {s["z"]: s["damaged_pixels"] for s in record["sections"]} == {
        z: int(found[z].sum()) for z in range(found.shape[0]) if found[z].any()}
    assert set(pixels) <= {s["z"] for s in record["sections"]}
    assert record["detector"]["sha256"] == _sha256(bundled_detector_path())
    assert record["options"]["grow"] == 1
    with tifffile.TiffFile(tmp_path / "found.tif") as tif:
        assert parse_description(tif.imagej_metadata["Info"]) == record
    # a repair with that mask says where it came from
    s = repair_to_file(d / "in.tif", tmp_path / "found.tif", tmp_path / "o.tif", **FAST)
    assert s.provenance["mask"]["detection"]["options"]["grow"] == 1
    assert s.provenance["mask"]["detection"]["detector"] == record["detector"]
