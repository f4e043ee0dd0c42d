"""What the Fine-tune dialog says about a run: the progress, the verdict on the new weights
(better, no clear change or worse; for the detector better, no change or worse) and the
status text, for the repair networks
(:class:`~napari_flowinpaint.tasks.training.FinetuneResult`) and for the damage detector
(:class:`~napari_flowinpaint.tasks.training.DetectorFinetuneResult`)."""

from __future__ import annotations

from ..tasks.training import DetectorFinetuneResult

__all__ = ["NO_CHANGE_F1", "PHASES", "verdict", "detector_verdict", "progress_text",
           "result_verdict", "result_text"]

#: A change of the detector's F1 on simulated damage smaller than this is "no change".
NO_CHANGE_F1 = 0.02
#: What each phase of a run is called in the status line.
PHASES = {"before": "Scoring the starting weights", "training": "Training",
          "after": "Scoring the fine-tuned weights"}


def verdict(change) -> tuple[str, str]:
    """``("better" | "no clear change" | "worse", sentence)`` for the paired change of the
    test repairs' PSNR (a :class:`~napari_flowinpaint.tasks.evaluation.PairedChange`, or
    None when it could not be measured), by :meth:`PairedChange.verdict`: better only when
    the whole 95 % interval lies above 0 dB (and the gain is at least 0.1 dB), worse only
    when it lies below 0 dB."""
    if change is None:
        return "no clear change", "No clear change: the test repairs could not be compared"
    word = change.verdict()
    sure = (f"95 % interval {change.low:+.2f} to {change.high:+.2f}" if change.n > 1
            else "one test repair: no interval")
    return word, (f"{word.capitalize()}: {change.mean:+.2f} dB ({sure}) over {change.n} "
                  "test repairs")


def progress_text(info: dict, item: str) -> str:
    """The status line for a ``finetune`` report ``info`` while it scores (``item``: what
    one scored item is called) or trains."""
    step, total = int(info["step"]), int(info["total"])
    phase = info.get("phase", "training")
    if phase == "training":
        loss = info.get("losses", {}).get("g_total", info.get("loss"))
        return (f"Training: iteration {step} of {total}"
                + (f", loss {loss:.4f}" if loss is not None else "")
                + f" ({info.get('seconds', 0):.0f} s)")
    if info.get("reused"):
        return f"Starting score reused ({total} {item}s scored in an earlier run)"
    return f"{PHASES[phase]}: {item} {step} of {total}"


def _alarms(scores: dict) -> str:
    return (f"{scores['false_alarms']:.0%} of the real slices flagged "
            f"({scores['false_pixels']:.2%} of their pixels), F1 {scores['f1']:.2f}")


def detector_verdict(before: dict, after: dict) -> tuple[str, str]:
    """``("better" | "no change" | "worse", sentence)`` for detector scores (the ``before``
    and ``after`` of a :class:`~napari_flowinpaint.tasks.training.DetectorFinetuneResult`).

    Worse: more real slices flagged, or F1 on simulated damage down by
    :data:`NO_CHANGE_F1` or more. Better (otherwise): fewer slices flagged, a fifth fewer
    false pixels, or F1 up by :data:`NO_CHANGE_F1` or more.
    """
    df1 = after["f1"] - before["f1"]
    alarms = after["false_alarms"] - before["false_alarms"]
    if alarms > 0 or df1 <= -NO_CHANGE_F1:
        word = "worse"
    elif alarms < 0 or df1 >= NO_CHANGE_F1 or (
            after["false_pixels"] <= 0.8 * before["false_pixels"]
            and before["false_pixels"] > 1e-4):
        word = "better"
    else:
        word = "no change"
    return word, (f"{word.capitalize()}: {_alarms(after)}, against {_alarms(before)} with "
                  "the starting detector")


def result_verdict(result) -> tuple[str, str] | None:
    """The verdict on a finished run's weights, or None when they were not scored."""
    if isinstance(result, DetectorFinetuneResult):
        if result.before is None or result.after is None:
            return None
        return detector_verdict(result.before, result.after)
    if result.psnr_before is None or result.psnr_after is None:
        return None
    return verdict(result.change)


def result_text(result) -> str:
    """The status line for a run that returned ``result``."""
    detector = isinstance(result, DetectorFinetuneResult)
    before = result.before if detector else result.psnr_before
    if before is None:
        return ("Stopped while scoring the starting weights; nothing was trained. Press "
                "Start to begin again.")
    scored = (f"the starting detector scores {_alarms(before)}" if detector else
              f"the starting weights score {before:.2f} dB on the test repairs")
    judged = result_verdict(result)
    if result.weights is not None and judged is None:
        return (f"Fine-tuned weights written to {result.weights} after {result.iterations} "
                f"iterations; scoring them was stopped, so whether they are better is "
                f"unknown ({scored}).")
    if result.stopped or result.weights is None:
        return (f"Stopped at iteration {result.iterations}; {scored}. The checkpoint is kept "
                f"in {result.run_dir}: press Start with the same output file to resume.")
    word, said = judged
    where = f"slices {result.held_out[0]}-{result.held_out[-1]}, left out of the training"
    advice = {"better": "Press Use in Repair widget to "
                        + ("auto-detect" if detector else "repair") + " with them.",
              "no change": "They do no better: keep the starting weights.",
              "no clear change": "They are not clearly better: keep the starting weights.",
              "worse": "Do not use them: keep the starting weights (try fewer iterations, "
                       "or mark the damaged slices as known damage)."}
    if detector:
        return (f"{said}, on {where}, after {result.iterations} iterations. Weights written "
                f"to {result.weights}. {advice[word]}")
    means = (f"mean {result.psnr_after:.2f} dB against {result.psnr_before:.2f} dB"
             + ("; starting score reused" if result.before_reused else ""))
    return (f"{said} of {where} ({means}), after {result.iterations} iterations. Weights "
            f"written to {result.weights}. {advice[word]}")
