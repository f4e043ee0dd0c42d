"""Tests of the evaluation harness (tasks/evaluate.py) and the `evaluate` CLI subcommand."""

import json

import pytest
import tifffile
from _synth import moving_stack

from napari_flowinpaint.tasks import evaluation as ev
from napari_flowinpaint.tasks.cli import main

ROW_KEYS = {"psnr", "psnr_hole", "ssim", "fsim", "sharpness", "grain", "membrane_f1",
            "membrane_f1_undamaged", "seconds", "n"}
DOWNSTREAM = {"membrane_f1", "membrane_f1_undamaged"}  # None without membrane labels


@pytest.fixture(scope="module")
def stack():
    # a smooth texture shifting by 1.7 px per section: flow can follow it, averaging blurs it
    return moving_stack(n=8, shape=(80, 80), step=1.7, seed=3)


@pytest.fixture(scope="module")
def report(stack):
    return ev.evaluate(stack, spacing=1, crop=64, samples=3, ratios=(0.1, 0.3), seed=0,
                       methods=("average", "flow"))


def _without_seconds(results):
    return {m: {k: {n: v for n, v in row.items() if n != "seconds"} for k, row in r.items()}
            for m, r in results.items()}


def test_structure(report):
    assert set(report) == {"config", "results"}
    assert set(report["results"]) == {"average", "flow"}
    for by_ratio in report["results"].values():
        assert list(by_ratio) == ["0.1", "0.3"]
        for row in by_ratio.values():
            assert set(row) == ROW_KEYS
            assert row["n"] == 3
            assert all(isinstance(row[k], float) for k in ROW_KEYS - {"n"} - DOWNSTREAM)
            assert all(row[k] is None for k in DOWNSTREAM)
    cfg = report["config"]
    assert cfg["spacing"] == 1 and cfg["samples"] == 3 and cfg["ratios"] == [0.1, 0.3]
    assert cfg["methods"] == ["average", "flow"] and cfg["z_range"] == "0:8"
    assert cfg["data_range"] == 255.0
    json.dumps(report, allow_nan=False)  # strict JSON


def test_flow_beats_average_on_moving_texture(report):
    for k in ("0.1", "0.3"):
        flow, avg = report["results"]["flow"][k], report["results"]["average"][k]
        assert flow["psnr_hole"] > avg["psnr_hole"] + 3
        assert flow["ssim"] > avg["ssim"]
        assert flow["sharpness"] > avg["sharpness"]
    # more damage, lower whole-image PSNR
    r = report["results"]["average"]
    assert r["0.3"]["psnr"] < r["0.1"]["psnr"]


def test_reproducible_and_independent_of_method_choice(stack, report):
    again = ev.evaluate(stack, spacing=1, crop=64, samples=3, ratios=(0.1, 0.3), seed=0,
                        methods=("average", "flow"))
    assert _without_seconds(again["results"]) == _without_seconds(report["results"])
    alone = ev.evaluate(stack, spacing=1, crop=64, samples=3, ratios=(0.1, 0.3), seed=0,
                        methods=("average",))
    assert (_without_seconds(alone["results"])["average"]
            == _without_seconds(report["results"])["average"])
    other = ev.evaluate(stack, spacing=1, crop=64, samples=3, ratios=(0.1, 0.3), seed=1,
                        methods=("average",))
    assert other["results"]["average"]["0.1"]["psnr"] != alone["results"]["average"]["0.1"]["psnr"]


def test_single_image_methods_and_registry(stack, monkeypatch):
    calls = []

    def untouched(prev, damaged, next, mask):
        calls.append(damaged.shape)
        return damaged  # leaves the white damage in place

    monkeypatch.setitem(ev.METHODS, "untouched", untouched)
    rep = ev.evaluate(stack, spacing=2, crop=48, samples=2, ratios=(0.2,),
                      methods=("telea", "biharmonic", "untouched"), mask_kind="blobs")
    assert calls == [(48, 48)] * 2
    res = rep["results"]
    assert res["untouched"]["0.2"]["psnr_hole"] < res["telea"]["0.2"]["psnr_hole"]
    assert res["untouched"]["0.2"]["psnr_hole"] < res["biharmonic"]["0.2"]["psnr_hole"]
    with pytest.raises(ValueError, match="already registered"):
        ev.register_method("telea", untouched)


def test_table_lists_every_row(report):
    table = ev.format_table(report)
    lines = table.splitlines()
    assert lines[0].startswith("| method | ratio | PSNR")
    assert len(lines) == 2 + 4
    assert any(line.startswith("| flow | 0.3 |") for line in lines)


def test_parse_z_range():
    assert ev.parse_z_range("200:", 250) == (200, 250)
    assert ev.parse_z_range(":-10", 30) == (0, 20)
    assert ev.parse_z_range((5, None), 30) == (5, 30)
    assert ev.parse_z_range(None, 7) == (0, 7)
    with pytest.raises(ValueError, match="slice syntax"):
        ev.parse_z_range("5-10", 30)
    with pytest.raises(ValueError, match="step"):
        ev.parse_z_range("0:10:2", 30)
    with pytest.raises(ValueError, match="no section"):
        ev.parse_z_range("20:10", 30)


@pytest.mark.parametrize("kwargs, match", [
    (dict(spacing=4), "too large"),
    (dict(spacing=1, z_range="0:2"), "too large"),
    (dict(spacing=1, methods=("magic",)), "unknown method"),
    (dict(spacing=1, ratios=(0.0,)), r"\(0, 1\)"),
    (dict(spacing=1, samples=0), "samples"),
    (dict(spacing=1, crop=8), "crop"),
    (dict(spacing=1, mask_kind="dots"), "mask kind"),
])
def test_errors(stack, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ev.evaluate(stack[:6], **{"crop": 32, "samples": 1, "methods": ("average",)} | kwargs)


def test_2d_input_is_refused(stack):
    with pytest.raises(ValueError, match="3-D"):
        ev.evaluate(stack[0], spacing=1)


def test_crop_larger_than_sections_warns(stack):
    with pytest.warns(UserWarning, match="larger than the sections"):
        rep = ev.evaluate(stack, spacing=1, crop=128, samples=1, ratios=(0.2,),
                          methods=("average",))
    assert rep["config"]["crop_shape"] == [80, 80]


def test_cli_writes_json(stack, tmp_path, capsys):
    data = tmp_path / "stack.tif"
    tifffile.imwrite(data, stack)
    out = tmp_path / "eval.json"
    argv = ["evaluate", "--data", str(data), "--spacing", "1", "--crop", "48",
            "--samples", "2", "--ratios", "0.2", "--methods", "average", "telea",
            "--seed", "5", "--json", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "| telea | 0.2 |" in captured.out
    assert "evaluate: 2/2 samples" in captured.err
    report = json.loads(out.read_text())
    assert set(report) == {"config", "results"}
    assert report["config"]["data"] == str(data) and report["config"]["seed"] == 5
    assert set(report["results"]["telea"]["0.2"]) == ROW_KEYS
    expected = ev.evaluate(stack, spacing=1, crop=48, samples=2, ratios=(0.2,), seed=5,
                           methods=("average", "telea"))
    assert (_without_seconds(report["results"]) == _without_seconds(expected["results"]))


def test_cli_errors_are_clean(stack, tmp_path, capsys):
    data = tmp_path / "flat.tif"
    tifffile.imwrite(data, stack[0])
    code = main(["evaluate", "--data", str(data), "--spacing", "1"])
    assert code == 2
    assert "error:" in capsys.readouterr().err
    code = main(["evaluate", "--data", str(tmp_path / "missing.tif"), "--spacing", "1"])
    assert code == 2
