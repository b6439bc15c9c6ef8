"""Autoencoder anomaly detection on NAB machine_temperature_system_failure (configs/autoencoder.yaml).

The series is split by time (train 60% / eval 20% / test 20%); training keeps only windows outside NAB's labelled
failure windows. Reported per labelled failure window in the eval+test period: detected or not (some window scored
above the Keras model's threshold overlaps it), and false positives: flagged windows outside every labelled window,
counted as windows and as separate alarm events (runs of consecutive flagged windows); the same for the shipped
int8 primary variant (its own threshold), with its decision agreement with Keras on eval+test windows (the export
gate). The config feeds every model the window clipped to the train range (``evaluate.input_clip``).

    python benchmarks/autoencoder_nab.py     # from the repository root (data under ../shared)
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import edgepipe  # noqa: E402,F401

SERIES = "realKnownCause/machine_temperature_system_failure.csv"
LABELS = "../shared/datasets/nab/labels/combined_windows.json"


def _epoch(text: str) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(text.split(".")[0]).replace(tzinfo=dt.timezone.utc).timestamp())


def main() -> None:
    from edgepipe.pipeline.config import load_config
    from edgepipe.pipeline.runner import LocalRunner
    from edgepipe.pipeline.templates import build_pipeline

    windows = [(_epoch(a), _epoch(b)) for a, b in json.load(open(LABELS))[SERIES]]
    with tempfile.TemporaryDirectory() as root:
        cfg = load_config("configs/autoencoder.yaml", [f"pipeline.root={root}"])
        started = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout to the one JSON line
            result = LocalRunner(root).run(build_pipeline(cfg), cfg.model_dump(mode="json"))
        node = next(n.name for n in build_pipeline(cfg).nodes if n.component.name == "evaluate")
        if node not in result.nodes:  # detection needs the evaluation; a refused export downstream does not matter
            raise result.error
        export_error = str(result.error) if result.error else None
        evaluation = result.artifact(node, "evaluation")
        report = evaluation.read_json("evaluation.json")
        errors = np.load(evaluation.path / "errors.npz")
        shipped = _primary(report, cfg)
        keras = _detection(errors, report, "keras", windows, 300 * cfg.window.size)  # 5-minute samples
        int8 = _detection(errors, report, shipped, windows, 300 * cfg.window.size)
        keras_all = report["metrics"]["keras"]["all"]
        print(json.dumps({
            "benchmark": "autoencoder_nab", "series": SERIES, "input_clip": report.get("input_clip"),
            "threshold_quantile": report["threshold_quantile"], "threshold_margin": report["threshold_margin"],
            **keras, "keras_window_f1": keras_all.get("f1"), "keras_auc": keras_all.get("auc"),
            "primary_variant": shipped, "primary_agreement": report["agreement"][shipped]["all"],
            "primary": {k: int8[k] for k in ("threshold", "labelled_windows_detected", "false_positive_windows",
                                             "false_positive_events")},
            "export_error": export_error, "seconds": round(time.perf_counter() - started, 1)}))


def _primary(report: dict, cfg) -> str:
    from edgepipe.tasks.variants import primary_variant

    return primary_variant(cfg.convert.primary, [m for m in report["models"] if m != "keras"])


def _detection(errors, report: dict, model: str, windows: list, span: int) -> dict:
    """Per labelled window in eval+test: detected (a flagged window overlaps it); false positives: flagged windows
    outside every labelled window, as windows and as alarm events (runs of consecutive flagged windows)."""
    threshold = report["thresholds"][model]
    detected, fp_windows, events, flagged_total = {}, 0, 0, 0
    for split in ("eval", "test"):
        if f"{split}__{model}" not in errors:
            continue
        score, start = errors[f"{split}__{model}"], errors[f"{split}__start_time"]
        order = np.argsort(start)
        score, start = score[order], start[order]
        flagged = score > threshold
        flagged_total += int(flagged.sum())
        inside = np.zeros(len(start), bool)
        for i, (a, b) in enumerate(windows):
            overlap = (start <= b) & (start + span >= a)
            inside |= overlap
            if overlap.any():
                detected[f"window{i}"] = {"start": a, "end": b, "split": split,
                                          "detected": bool((flagged & overlap).any()),
                                          "flagged_windows": int((flagged & overlap).sum())}
        outside = flagged & ~inside
        fp_windows += int(outside.sum())
        events += int(np.sum(outside[1:] & ~outside[:-1]) + (outside[0] if len(outside) else 0))
    return {"threshold": threshold, "labelled_windows_in_eval_test": len(detected),
            "labelled_windows_detected": sum(w["detected"] for w in detected.values()), "windows": detected,
            "false_positive_windows": fp_windows, "false_positive_events": events, "flagged_windows": flagged_total}


if __name__ == "__main__":
    main()
