"""Measure every optimization variant against the issue-5 targets; print one JSON line.

Two subjects:

* ``default``: the default pipeline (Conv1D autoencoder, F1 on eval+test windows) run cold through the CLI, then
  again with ``prune.target_sparsity=0.8`` (only the pruning branch re-runs); rows come from the bundle's
  ``variants.json``.
* ``cnn_digits`` / ``cnn_digits_wide``: the ``cnn`` template (``configs/cnn.yaml``, scikit-learn's 8x8 digits) run
  through the pipeline with ``prune.target_sparsity=0.8`` (and a wider CNN above 100k parameters, where the size
  target applies); rows come from the bundle's ``variants.json``; metric = test accuracy.

Targets (each reported as measured, true/false, never adjusted): int8 QAT metric within 1 point of Keras float;
int8 size <= 0.3x float32 TFLite for models above 100k parameters; int8/float32 latency <= 0.8 (batch 1, one thread,
XNNPACK); pruned to 80% + int8: gzip <= 0.15x float32 gzip and metric within 2 points. PTQ and QAT both shown.

Usage: python benchmarks/optimization.py [--skip-pipeline] [--skip-narrow] [--skip-wide] [--epochs N]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path



def run_default_pipeline(overrides: list[str], root: Path, output: Path) -> float:
    cmd = [sys.executable, "-m", "edgepipe", "run", "--root", str(root), "--output", str(output)]
    for override in overrides:
        cmd += ["--set", override]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def slim(rows: list[dict]) -> dict:
    keys = ("size_bytes", "gzip_bytes", "params", "sparsity", "latency_us", "metric", "agreement", "exported")
    return {r["variant"]: {k: (round(r[k], 4) if isinstance(r.get(k), float) else r.get(k)) for k in keys}
            for r in rows}


def default_subject() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        cold = run_default_pipeline([], root, Path(tmp) / "bundle")
        rows = slim(json.loads((Path(tmp) / "bundle" / "variants.json").read_text()))
        # PQAT at 80% may fail the export bounds: ship int8_qat so the table (with pqat exported or not) is written.
        # 80% needs a longer fine-tune than the default 50% (2 epochs): 8 epochs, the schedule reaching 80% midway.
        run_default_pipeline(["prune.target_sparsity=0.8", "prune.epochs=8", "convert.primary=int8_qat"], root,
                             Path(tmp) / "bundle80")
        rows80 = slim(json.loads((Path(tmp) / "bundle80" / "variants.json").read_text()))
    rows["pruned80_int8"], rows["pqat80"] = rows80["pruned_int8"], rows80["pqat"]
    return {"cold_run_s": round(cold, 1), "metric": "f1", "rows": rows}


def cnn_subject(overrides: list[str]) -> dict:
    """The ``cnn`` template (configs/cnn.yaml) through the pipeline, pruned to 80%: rows from the bundle's table
    (test split accuracy). The gate is opened (min_agreement 0) so every row is measured and reported; each row
    still says whether it would pass the default bounds via its agreement and accuracy drop."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        cmd = [sys.executable, "-m", "edgepipe", "run", "cnn", "--root", str(Path(tmp) / "root"),
               "--output", str(Path(tmp) / "bundle")]
        for override in ["prune.target_sparsity=0.8", "prune.epochs=6", "prune.learning_rate=0.001",
                         "qat.epochs=3", "convert.primary=int8_qat", "export.min_agreement=0",
                         "export.max_metric_drop=null", "evaluate.latency_runs=200", *overrides]:
            cmd += ["--set", override]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = slim(json.loads((Path(tmp) / "bundle" / "variants.json").read_text()))
    rows["pruned80_int8"], rows["pqat80"] = rows.pop("pruned_int8"), rows.pop("pqat")
    return {"cold_run_s": round(time.perf_counter() - started, 1), "metric": "accuracy", "rows": rows}


def targets(subject: dict) -> dict:
    rows = subject["rows"]
    ref, f32 = rows["keras"], rows["float32"]
    best_int8 = min(("int8_qat", "int8_ptq"), key=lambda n: rows[n]["latency_us"])
    out = {
        "qat_metric_drop_points": round(100 * (ref["metric"] - rows["int8_qat"]["metric"]), 2),
        "ptq_metric_drop_points": round(100 * (ref["metric"] - rows["int8_ptq"]["metric"]), 2),
        "int8_size_ratio": round(rows["int8_qat"]["size_bytes"] / f32["size_bytes"], 3),
        "int8_latency_ratio": round(rows[best_int8]["latency_us"] / f32["latency_us"], 3),
        "pruned80_gzip_ratio": round(rows["pqat80"]["gzip_bytes"] / f32["gzip_bytes"], 3),
        "pruned80_metric_drop_points": round(100 * (ref["metric"] - rows["pqat80"]["metric"]), 2),
        "pruned80_ptq_gzip_ratio": round(rows["pruned80_int8"]["gzip_bytes"] / f32["gzip_bytes"], 3),
        "pruned80_ptq_metric_drop_points": round(100 * (ref["metric"] - rows["pruned80_int8"]["metric"]), 2)}
    params = ref["params"]
    out["met"] = {"qat_within_1pt": out["qat_metric_drop_points"] <= 1.0,
                  "size_le_0.3x": (out["int8_size_ratio"] <= 0.3) if params > 100_000 else "n/a (<=100k params)",
                  "latency_le_0.8x": out["int8_latency_ratio"] <= 0.8,
                  "pruned80_gzip_le_0.15x": out["pruned80_gzip_ratio"] <= 0.15,
                  "pruned80_within_2pt": out["pruned80_metric_drop_points"] <= 2.0}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-pipeline", action="store_true", help="only the CNN digits subjects")
    parser.add_argument("--epochs", type=int, default=40, help="CNN training epochs (configs/cnn.yaml: 40, "
                                                             "early stopping)")
    parser.add_argument("--skip-wide", action="store_true", help="skip the >100k-parameter CNN")
    parser.add_argument("--skip-narrow", action="store_true", help="skip the small (<100k-parameter) CNN")
    args = parser.parse_args()
    result = {}
    if not args.skip_pipeline:
        result["default"] = default_subject()
    epochs = [f"training.epochs={args.epochs}"]
    if not args.skip_narrow:
        result["cnn_digits"] = cnn_subject(epochs)
    if not args.skip_wide:
        result["cnn_digits_wide"] = cnn_subject([*epochs, "model.hparams={filters: [64, 128], convs_per_block: 2, "
                                                      "dense_units: 128, dropout: 0.25, l2: 0.0001, "
                                                      "learning_rate: 0.002}"])
    for name, subject in result.items():
        subject["targets"] = targets(subject)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
