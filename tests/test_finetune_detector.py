"""Adapting the damage detector to a user's stack: ``finetune_detector`` (Python), the
``finetune-detector`` command, and what its sampler takes from the user's marks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from _synth import CountingStack

from napari_flowinpaint.engine.weights import bundled_detector_path, load_detector
from napari_flowinpaint.tasks.cli import main
from napari_flowinpaint.tasks.detection import detect_damage
from napari_flowinpaint.tasks.simulation import DAMAGE_KINDS
from napari_flowinpaint.tasks.training import (
    DetectorSampler,
    TrainSource,
    finetune_detector,
)
from napari_flowinpaint.tasks.training.common import marked_sections

SAMPLE = (Path(__file__).resolve().parents[1] / "src" / "napari_flowinpaint" / "data"
          / "fibsem_medulla_sample.tif")
needs_detector = pytest.mark.skipif(bundled_detector_path() is None,
                                    reason="no bundled detector weights in weights/")
FAST = dict(batch=2, crop=64, score_samples=1, held_out=0.25)


@pytest.fixture(scope="module")
def sample():
    """Real FIB-SEM sections (16 x 192 x 192), shipped with the package."""
    return tifffile.imread(SAMPLE)


def test_sampler_leaves_painted_pixels_out_and_skips_sections(sample):
    src = TrainSource("<sample>/s", (0, 16), (1,), skip=tuple(range(0, 16, 2)))
    marks = np.zeros(sample.shape, np.uint8)
    marks[:, :96] = 3  # the top half of every section painted (any nonzero label)
    s = DetectorSampler([(sample, src)], crop=48, rng=0, window=120, marks=[marks],
                        p_clean=1.0, p_one_sided=0.0, p_alone=0.0)
    seen = set()
    real_read = s._read

    def read(arr, marked, zs):
        seen.add(zs[1])
        trio, ignore = real_read(arr, marked, zs)
        assert trio[0].shape == (120, 120)  # only a window is read
        return trio, ignore

    s._read = read
    weights = [s.sample()[2] for _ in range(12)]
    assert seen and all(z % 2 == 1 for z in seen)  # skipped sections never judged
    assert all(set(np.unique(w)) <= {0.0, 1.0} for w in weights)
    assert any((w == 0).any() for w in weights) and any((w == 1).any() for w in weights)
    x, t, w = s.batch(3)
    assert x.shape[1] == 8 and t.shape == w.shape and w.shape[1] == 1
    with pytest.raises(ValueError, match="expected the stack's"):
        DetectorSampler([(sample, src)], marks=[marks[:4]])
    with pytest.raises(ValueError, match="one .or None. per stack"):
        DetectorSampler([(sample, src)], marks=[])
    with pytest.raises(ValueError, match="no section of z 0:16 is left"):
        DetectorSampler([(sample, TrainSource("<s>/s", (0, 16), (1,), skip=tuple(range(16))))])


def test_marked_sections_from_a_mask_or_a_list():
    mask = np.zeros((5, 10, 10), bool)
    mask[1, :2] = True
    mask[3, :8] = True
    assert marked_sections(mask, mask.shape) == ([1, 3], [3])
    assert marked_sections([4, -1, 2], (5, 10, 10)) == ([2, 4], [2, 4])
    assert marked_sections(None, (5, 10, 10)) == ([], [])
    with pytest.raises(ValueError, match="expected the stack's"):
        marked_sections(mask[:2], mask.shape)


@needs_detector
def test_finetune_detector_scores_before_after_stops_and_resumes(sample, tmp_path):
    marks = np.zeros(sample.shape, bool)
    marks[2, 20:60, 20:60] = True
    marks[5] = True  # a missing section: not trained on
    marks[13, :10, :10] = True  # in the scored part: left out of the false-alarm count
    seen = []
    res = finetune_detector(sample, tmp_path / "det", damaged=marks, iterations=6,
                            callback=seen.append, **FAST)
    assert res.weights == tmp_path / "det.safetensors" and res.weights.is_file()
    assert not res.stopped and res.iterations == 6 and res.held_out == (12, 13, 14, 15)
    for scores in (res.before, res.after):
        assert 0 <= scores["false_alarms"] <= 1 and 0 <= scores["f1"] <= 1
        assert scores["sections"] == 3 and len(scores["f1_kinds"]) == len(DAMAGE_KINDS)
    phases = [x["phase"] for x in seen]
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == [
        "before", "training", "after"]
    meta = load_detector(res.weights).meta
    assert meta["input"] == "levelled" and meta["training"]["finetuned_from"] == "bundled"
    assert "sections 0-11 of 16" in meta["training"]["adapted_to"]
    assert detect_damage(sample, 14, weights=res.weights).shape == sample.shape[1:]
    # an existing output is refused before any work
    with pytest.raises(FileExistsError):
        finetune_detector(sample, tmp_path / "det", iterations=6, **FAST)
    # stopped while training: a checkpoint; the same call resumes to the end
    ticks = []
    stopped = finetune_detector(sample, tmp_path / "s", iterations=6, callback=ticks.append,
                                should_stop=lambda: any(t["phase"] == "training"
                                                        and t["step"] >= 3 for t in ticks),
                                **FAST)
    assert stopped.stopped and stopped.weights is None and stopped.iterations == 3
    assert stopped.before is not None and (stopped.run_dir / "checkpoint.pt").is_file()
    more = []
    done = finetune_detector(sample, tmp_path / "s", iterations=6, callback=more.append,
                             **FAST)
    assert [x["step"] for x in more if x["phase"] == "training"] == [4, 5, 6]
    assert done.weights.is_file() and done.after is not None
    with pytest.raises(ValueError, match="too short"):
        finetune_detector(sample[:5], tmp_path / "x")
    with pytest.raises(ValueError, match="no section is left"):
        finetune_detector(sample, tmp_path / "x", damaged=list(range(16)), **FAST)


@needs_detector
def test_finetune_detector_command(sample, tmp_path, capsys):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, sample[:10])
    out = tmp_path / "adapted.safetensors"
    code = main(["finetune-detector", str(path), "-o", str(out), "--iterations", "2",
                 "--held-out", "0.3"])
    text = capsys.readouterr().out
    assert code == 0 and out.is_file() and out.with_suffix(".json").is_file()
    assert "held-out sections 7-9, before: " in text and "simulated damage F1" in text
    assert f"detect --weights {out}" in text
    # an existing output is refused at once (exit 2); --overwrite replaces it
    again = ["finetune-detector", str(path), "-o", str(out), "--iterations", "1"]
    assert main(again) == 2 and "exists" in capsys.readouterr().err
    assert main(again + ["--overwrite"]) == 0


def test_training_sources_name_sections_to_skip():
    from napari_flowinpaint.tasks.training import parse_source

    src = parse_source("data/callosum/raw.tif:0:36:1:4")
    assert src == TrainSource("data/callosum/raw.tif", (0, 36), (1,), skip=(4,))
    assert parse_source("a.tif:10:20:2,3").skip == ()
    assert parse_source("a.tif").z_range == (0, 1 << 30)


@needs_detector
def test_finetune_detector_reads_a_lazy_stack_in_pieces(sample, tmp_path):
    big = np.concatenate([sample] * 4)  # 64 sections
    lazy = CountingStack(big)
    res = finetune_detector(lazy, tmp_path / "d", iterations=2, score_sections=6, **FAST)
    assert res.weights.is_file()
    # single sections and windows while training; the scored part (6 sections) at once;
    # never the 48 training sections
    assert max(lazy.reads) <= 6 and lazy.reads.count(6) == 1
