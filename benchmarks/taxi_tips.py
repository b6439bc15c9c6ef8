"""TFX's taxi big-tipper as a pipeline of your own (examples/taxi_tips/) on the whole taxi sample, through the CLI.

What it measures: the accuracy of the exported int8 bundle (and the float32/Keras models) on the held-out 20%
(``evaluate.split: test``) next to the majority-class rate on the same trips, the int8 model's agreement with
Keras, the cold run's wall time and a cached re-run's. Prints one JSON line. Run from the repository root (the CSV
is ``../shared/datasets/taxi/data.csv``); the tests run the same pipeline on 400 trips.

    python benchmarks/taxi_tips.py [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "taxi_tips"


def edgepipe(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "edgepipe", *args], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"edgepipe {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgepipe-taxi-") as tmp:
        run = ["run", str(EXAMPLE / "pipeline.py"), str(EXAMPLE / "config.yaml"), "--root", f"{tmp}/root",
               "--output", f"{tmp}/bundle", "--set", f"training.seed={args.seed}"]
        started = time.perf_counter()
        edgepipe(*run)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        cached = edgepipe(*run)
        warm = time.perf_counter() - started
        bundle = json.loads(Path(tmp, "bundle", "bundle.json").read_text())
    metrics = bundle["metrics"]
    confusion = metrics["evaluation"]["confusion_matrix"]  # rows: true class
    examples = sum(map(sum, confusion))
    accuracy = {name: round(values["all"]["accuracy"], 4) for name, values in metrics["per_model"].items()}
    print(json.dumps({
        "benchmark": "taxi_tips", "seed": args.seed, "split": metrics["split"], "test_examples": examples,
        "int8_accuracy": accuracy.get("int8"), "float32_accuracy": accuracy.get("float32"),
        "keras_accuracy": accuracy.get("keras"),
        "majority_class_rate": round(max(sum(row) for row in confusion) / examples, 4),
        "int8_agreement_with_keras": round(metrics["agreement_with_keras"]["int8"], 4),
        "primary_variant": bundle["primary_variant"], "cold_run_s": round(cold, 1), "cached_run_s": round(warm, 1),
        "cached_rerun_all_hits": "(8/8 cached)" in cached.stdout}))


if __name__ == "__main__":
    main()
