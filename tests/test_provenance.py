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
    """The record stored in a TIFF or zarr output itself, read without the package."""
    if path.suffix == ".tif":
        with tifffile.TiffFile(path) as tif:
            return parse_description(tif.imagej_metadata["Info"])
    return dict(zarr.open(store=str(path), mode="r").attrs)[ATTRIBUTE]


#: output -> its sidecar, and whether the record is also stored in the output
OUTPUTS = {"o.tif": ("o.tif", True), "o.zarr": ("o.zarr", True),
           "o.ome.zarr": ("o.ome.zarr", True), "o.h5": ("o.h5", True),
           "o.h5:/volumes/fixed": ("o.h5", True), "sections/": ("sections", True),
           "png/*.png": ("png", True), "o.mrc": ("o.mrc", False)}


@pytest.mark.parametrize("name", list(OUTPUTS))
def test_every_output_format_carries_the_record(files, tmp_path, name):
    d, pixels = files
    out = f"{tmp_path}/{name}"
    summary = repair_to_file(d / "in.tif", d / "m.tif", out, device="cpu", mode="faithful")
    file, embedded = OUTPUTS[name]
    sidecar = tmp_path / f"{file}.provenance.json"
    assert sidecar_path(out) == sidecar
    record = json.loads(sidecar.read_text())
    assert record == summary.provenance
    if name.endswith((".tif", ".zarr")):
        assert _embedded(tmp_path / name) == record
    assert [(s["z"], s["damaged_pixels"]) for s in record["sections"]] == sorted(pixels.items())
    assert all(0 < s["mean_confidence"] <= 1 for s in record["sections"])
    assert record["summary"]["damaged_pixels"] == sum(pixels.values())
    bundled = bundled_weights_path("faithful")  # the file of the mode repaired in
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
    assert record["output"]["kind"] == "repaired stack"
    assert record["date"] and record["host"]
    sidecar.unlink()  # the record stored in the output is found without its sidecar
    assert read_provenance(out) == (record if embedded else None)


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


def _sheets(html: str) -> list:
    """The contact sheets of a report: (section, decoded PNG), in the report's order."""
    import base64
    import io
    import re

    from PIL import Image

    found = re.findall(r'<figure id="z(\d+)">.*?base64,([A-Za-z0-9+/=]+)"', html)
    return [(int(z), Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB"))
            for z, png in found]


def test_the_qc_report_shows_every_repaired_section(files, tmp_path):
    from napari_flowinpaint.tasks.io import read_stack
    from napari_flowinpaint.tasks.qc_report import write_qc_report
    from napari_flowinpaint.tasks.qc_sheets import GAP, grey_range, palette, shrink

    d, pixels = files
    s = repair_to_file(d / "in.tif", d / "m.tif", tmp_path / "o.zarr", device="cpu",
                       confidence=tmp_path / "c.zarr")
    done = write_qc_report(tmp_path / "o.zarr", size=32)
    assert done.path == tmp_path / "o-qc.html" and done.notes == []
    html = done.path.read_text()
    means = {r["z"]: r["mean_confidence"] for r in s.provenance["sections"]}
    order = sorted(means, key=means.get)  # lowest confidence first
    assert [r["z"] for r in done.sections] == done.sheets == order
    for z in pixels:  # the table and the sheets name every section, with its numbers
        assert f"<td class=num>{z}</td><td class=num>{pixels[z]:,}</td>" in html
        assert f"Section {z}: {pixels[z]:,} damaged pixels" in html
    assert s.provenance["weights"]["sha256"] in html and "mode = textured" in html
    sheets = _sheets(html)
    assert [z for z, _ in sheets] == order
    out, masks = np.asarray(read_stack(tmp_path / "o.zarr")), tifffile.imread(d / "m.tif")
    grey = np.array(palette()).reshape(-1, 3)
    for z, image in sheets:  # 48 px sections shrunk 2x: five 24 px panels, GAP apart
        assert image.size == (5 * 24 + 4 * GAP, 24)
        a = np.asarray(image)
        panels = [a[:, i * (24 + GAP):i * (24 + GAP) + 24] for i in range(5)]
        m = shrink(masks[z], 32, reduce="max")
        red = (panels[1] == (255, 32, 32)).all(axis=-1)  # the mask's outline, on it
        assert red.any() and not red[~m].any()
        lo, hi = grey_range(out[z], masks[z] > 0)  # the repair, in the row's grey scale
        index = np.round(np.clip((shrink(out[z], 32) - lo) * 191 / (hi - lo), 0, 191))
        np.testing.assert_array_equal(panels[2], grey[index.astype(int)])
        coloured = panels[3][..., 0] != panels[3][..., 2]  # the confidence, on the mask
        np.testing.assert_array_equal(coloured, m)
        for k, neighbour in ((0, z - 1), (4, z + 1)):  # the repaired neighbours
            lo_n = np.round(np.clip((shrink(out[neighbour], 32) - lo) * 191 / (hi - lo),
                                    0, 191))
            np.testing.assert_array_equal(panels[k], grey[lo_n.astype(int)])


def test_the_qc_report_caps_its_sheets_and_says_so(files, tmp_path):
    from napari_flowinpaint.tasks.qc_report import write_qc_report

    d, pixels = files
    out = f"{tmp_path}/o.h5:/volumes/fixed"  # any output format
    repair_to_file(d / "in.tif", d / "m.tif", out, **FAST)
    done = write_qc_report(out, tmp_path / "qc.html", max_sheets=1)
    html = done.path.read_text()
    assert len(done.sheets) == len(_sheets(html)) == 1 and len(done.sections) == 2
    assert "Contact sheets of the 1 sections of lowest confidence only, of 2" in html
    assert all(f"<td class=num>{z}</td>" in html for z in pixels)
    for _, image in _sheets(html):  # no confidence map written: four panels
        assert image.size == (4 * 48 + 3 * 6, 48)
    chosen = write_qc_report(out, tmp_path / "qc.html", sections="5", overwrite=True)
    assert chosen.sheets == [5]
    with pytest.raises(FileExistsError, match="QC report"):
        write_qc_report(out, tmp_path / "qc.html")
    write_stack(tmp_path / "plain.tif", np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="carries no provenance record"):
        write_qc_report(tmp_path / "plain.tif")


def test_report_command_and_auto_write_the_qc_report(files, tmp_path, capsys):
    from napari_flowinpaint.tasks import cli

    d, _ = files
    repair_to_file(d / "in.tif", d / "m.tif", tmp_path / "o.tif", **FAST)
    assert cli.main(["report", str(tmp_path / "o.tif"), "--no-progress"]) == 0
    assert "2 repaired section(s), 2 contact sheet(s)" in capsys.readouterr().out
    assert (tmp_path / "o-qc.html").is_file()
    assert cli.main(["auto", str(d / "in.zarr"), "-o", str(tmp_path / "fixed.zarr"),
                     "--stages", "initial_reference", "--grow", "1", "--no-progress"]) == 0
    assert "the QC report" in capsys.readouterr().out
    record = read_provenance(tmp_path / "fixed.zarr")
    assert record["mask"]["source"] == "detected"
    assert record["mask"]["detection"]["options"]["grow"] == 1
    html = (tmp_path / "fixed-qc.html").read_text()
    assert all(f"Section {r['z']}:" in html for r in record["sections"])
    assert cli.main(["auto", str(d / "in.zarr"), "-o", str(tmp_path / "again.zarr"),
                     "--stages", "initial_reference", "--no-qc-report", "--no-progress"]) == 0
    assert not (tmp_path / "again-qc.html").exists()
