"""The fine-tune verdict: paired differences of the same test repairs, their 95 % interval,
the rule that turns them into better / no clear change / worse, and the starting score that
is computed once and reused."""

import json
import math

import numpy as np
import pytest
import torch
from _synth import moving_stack

from napari_flowinpaint.engine import save_weights
from napari_flowinpaint.engine.nets import build_networks, get_config
from napari_flowinpaint.tasks.evaluation import evaluate, paired_change
from napari_flowinpaint.tasks.training import finetune, scoring


@pytest.mark.parametrize("gains, mean, half, word", [
    # t(0.975, 3) = 3.1824; sd of the gains 0.12910 -> half width 3.1824 * 0.12910 / 2
    ([0.1, 0.2, 0.3, 0.4], 0.25, 0.20543, "better"),
    ([-0.1, -0.2, -0.3, -0.4], -0.25, 0.20543, "worse"),
    ([0.6, -0.2, 0.5, -0.1], 0.2, 3.1824 * 0.40825 / 2, "no clear change"),  # spans 0
    ([0.04, 0.05, 0.06, 0.05], 0.05, 3.1824 * 0.0081650 / 2, "no clear change"),  # < 0.1 dB
])
def test_paired_change_and_the_verdict_rule(gains, mean, half, word):
    before = [20.0, 25.0, 30.0, 22.0]  # very different repairs: only the pairs matter
    after = [b + g for b, g in zip(before, gains, strict=True)]
    change = paired_change(before, after)
    assert change.n == 4 and change.level == 0.95
    assert change.mean == pytest.approx(mean, abs=1e-9)
    assert change.low == pytest.approx(mean - half, abs=1e-4)
    assert change.high == pytest.approx(mean + half, abs=1e-4)
    assert change.verdict() == word


def test_paired_change_edge_cases():
    # a perfect repair (inf, or None in a JSON report) leaves its pair out
    change = paired_change([20.0, None, 21.0, math.inf], [20.5, 30.0, 21.5, 25.0])
    assert change.n == 2 and change.mean == pytest.approx(0.5) and change.low == change.high
    assert change.verdict() == "better"  # the same gain twice: the interval is that point
    # two gains of +0.5 and +0.6 dB: t(0.975, 1) = 12.7 makes the interval -0.09 to +1.19
    assert paired_change([20.0, 21.0], [20.5, 21.6]).verdict() == "no clear change"
    one = paired_change([20.0], [25.0])  # one pair: no interval, so never a verdict
    assert one.n == 1 and one.low == -math.inf and one.high == math.inf
    assert one.verdict() == "no clear change"
    with pytest.raises(ValueError, match="do not pair up"):
        paired_change([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no test repair"):
        paired_change([None], [1.0])


def test_evaluate_gives_per_sample_scores_only_when_asked():
    stack = moving_stack(9, (48, 48), step=1.0, seed=3).astype(np.uint8)
    kw = dict(spacing=1, crop=32, samples=3, ratios=(0.2, 0.4), seed=5, methods=["average"])
    plain = evaluate(stack, **kw)["results"]["average"]
    rows = evaluate(stack, per_sample=True, **kw)["results"]["average"]
    for key, row in rows.items():
        per = row.pop("per_sample")
        row.pop("seconds"), plain[key].pop("seconds")  # a clock, not a score
        assert row == plain[key] and "per_sample" not in plain[key]  # nothing else changes
        assert len(per["z"]) == len(per["psnr_hole"]) == 3
        assert all(1 <= z <= 7 for z in per["z"])
        assert np.mean(per["psnr_hole"]) == pytest.approx(row["psnr_hole"])


def test_evaluate_shows_each_repair_and_computes_only_the_metrics_asked():
    stack = moving_stack(9, (48, 48), step=1.0, seed=3).astype(np.uint8)
    kw = dict(spacing=1, crop=32, samples=2, ratios=(0.2, 0.4), seed=5,
              methods=["average", "telea"], per_sample=True)
    full = evaluate(stack, **kw)["results"]
    seen = []
    only = evaluate(stack, on_sample=seen.append, metrics_only=("psnr_hole",), **kw)["results"]
    for m in full:
        for key, row in only[m].items():
            assert row["psnr_hole"] == pytest.approx(full[m][key]["psnr_hole"])
            assert row["per_sample"] == full[m][key]["per_sample"]
            assert all(row[k] is None for k in ("psnr", "ssim", "fsim", "sharpness", "grain"))
    assert [(i["ratio"], i["index"]) for i in seen] == [(0.2, 0), (0.2, 1), (0.4, 0), (0.4, 1)]
    data_range = 255.0
    for i, info in enumerate(seen):
        h, w = info["truth"].shape
        assert (h, w) == (32, 32) and info["mask"].dtype == bool and info["mask"].any()
        np.testing.assert_array_equal(
            info["truth"], stack[info["z"], info["y"]:info["y"] + h, info["x"]:info["x"] + w])
        for m, repaired in info["repaired"].items():  # the very repair that was scored
            np.testing.assert_array_equal(repaired[~info["mask"]],
                                          info["damaged"][~info["mask"]])
            err = np.mean((repaired[info["mask"]].astype(float)
                           - info["truth"][info["mask"]]) ** 2)
            key = f"{info['ratio']:g}"
            scored = only[m][key]["per_sample"]["psnr_hole"][info["index"]]
            assert 10 * math.log10(data_range ** 2 / err) == pytest.approx(scored, abs=1e-6)
        assert not np.array_equal(info["repaired"]["average"], info["repaired"]["telea"]) or i
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate(stack, metrics_only=("psnr", "beauty"), **kw)


def test_the_starting_score_is_computed_once(tmp_path, monkeypatch):
    torch.manual_seed(0)
    base = save_weights(tmp_path / "base", get_config("cpu"), *build_networks("cpu"))
    stack = moving_stack(12, (64, 64), step=1.0, seed=2).astype(np.uint8)
    monkeypatch.setattr(scoring, "_MEMORY", {})
    calls, real = [], scoring.score_weights
    monkeypatch.setattr(scoring, "score_weights",
                        lambda *a, **k: (calls.append(a[1]), real(*a, **k))[1])
    kw = dict(weights=base, iterations=2, batch=2, crop=32, score_samples=2)
    first = finetune(stack, tmp_path / "a", **kw)
    assert calls == [base] and not first.before_reused
    change = first.change
    assert change.n == 6 and change.low <= change.mean <= change.high
    assert change.mean == pytest.approx(first.psnr_after - first.psnr_before)
    kept = json.loads((first.run_dir / "start_score.json").read_text())
    assert np.mean(kept["scores"]["psnr_hole"]) == pytest.approx(first.psnr_before)
    # the before/after example: the first test repair at 30 % damage, as scored
    ex = first.example
    shape = (64, 64)  # the scored crops: 256 px, or the whole section when smaller
    assert ex.truth.shape == ex.damaged.shape == ex.mask.shape == ex.before.shape == shape
    assert ex.after.shape == shape and ex.z in first.held_out
    np.testing.assert_array_equal(ex.truth, stack[ex.z])
    assert 0.2 < ex.mask.mean() < 0.4
    for repair in (ex.before, ex.after):
        np.testing.assert_array_equal(repair[~ex.mask], ex.damaged[~ex.mask])
    assert not np.array_equal(ex.before[ex.mask], ex.after[ex.mask])  # the weights differ
    assert ex.psnr_before == kept["scores"]["psnr_hole"][2]  # ratio 0.3, sample 0 of 2
    for repair, psnr in ((ex.before, ex.psnr_before), (ex.after, ex.psnr_after)):
        err = np.mean((repair[ex.mask].astype(float) - ex.truth[ex.mask]) ** 2)
        assert 10 * math.log10(255.0 ** 2 / err) == pytest.approx(psnr, abs=1e-6)
    # another output, same stack and starting weights: the score is reused
    seen = []
    second = finetune(stack, tmp_path / "b", callback=seen.append, **kw)
    assert calls == [base] and second.before_reused
    assert second.psnr_before == first.psnr_before
    np.testing.assert_array_equal(second.example.before, ex.before)  # kept with the score
    assert second.example.psnr_before == ex.psnr_before and second.example.after is not None
    assert [i for i in seen if i["phase"] == "before"] == [
        {"phase": "before", "step": 6, "total": 6, "reused": True}]
    # a restart (nothing in memory) resuming a stopped run reads it from the run folder
    ticks = []
    stop = finetune(stack, tmp_path / "c", callback=ticks.append, **{**kw, "iterations": 12},
                    should_stop=lambda: any(t["phase"] == "training" for t in ticks))
    assert stop.stopped and stop.weights is None and len(calls) == 1
    monkeypatch.setattr(scoring, "_MEMORY", {})
    resumed = finetune(stack, tmp_path / "c", **{**kw, "iterations": 12})
    assert len(calls) == 1 and resumed.before_reused and resumed.weights.is_file()
    assert resumed.psnr_before == first.psnr_before
    for name in ("truth", "damaged", "mask", "before"):  # read back from the run folder
        np.testing.assert_array_equal(getattr(resumed.example, name), getattr(ex, name))
    assert (resumed.example.z, resumed.example.y, resumed.example.x) == (ex.z, ex.y, ex.x)
    (stop.run_dir / "start_example.npz").unlink()  # without its example: scored again
    monkeypatch.setattr(scoring, "_MEMORY", {})
    again = finetune(stack, tmp_path / "c", **{**kw, "iterations": 12}, overwrite=True)
    assert len(calls) == 2 and not again.before_reused and again.example is not None
    calls.pop()
    # a held-out slice changed, or other starting weights: scored again
    edited = stack.copy()
    edited[-1] = 255 - edited[-1]
    assert not finetune(edited, tmp_path / "d", **kw).before_reused and len(calls) == 2
    other = finetune(stack, tmp_path / "e", **{**kw, "weights": second.weights})
    assert not other.before_reused and calls[-1] == second.weights
