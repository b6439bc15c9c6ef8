"""Measure the default pipeline: cold run, cached re-run, .tflite sizes, F1 of Keras vs int8.

Runs ``edgepipe run`` twice in a fresh pipeline root (as a user's first and second ``make run`` after
installation, start-up included) and prints one JSON line:

    {"cold_run_s": ..., "cached_run_s": ..., "int8_bytes": ..., "float32_bytes": ..., "f1_keras": ...,
     "f1_int8": ..., "f1_float32": ..., "int8_agreement": ...}

Usage: python benchmarks/default_pipeline.py [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(root: Path, output: Path, overrides: list[str]) -> float:
    cmd = [sys.executable, "-m", "edgepipe", "run", "--root", str(root), "--output", str(output)]
    for override in overrides:
        cmd += ["--set", override]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, output = Path(tmp) / "root", Path(tmp) / "bundle"
        cold = timed_run(root, output, args.overrides)
        cached = timed_run(root, output, args.overrides)
        meta = json.loads((output / "bundle.json").read_text())
        per_model = meta["metrics"]["per_model"]  # F1 over eval+test windows ("all")
        print(json.dumps({
            "cold_run_s": round(cold, 2),
            "cached_run_s": round(cached, 2),
            "primary_variant": meta.get("primary_variant"),
            "int8_bytes": (output / "model.tflite").stat().st_size,
            "float32_bytes": (output / "model_float32.tflite").stat().st_size,
            "f1_keras": round(per_model["keras"]["all"]["f1"], 4),
            "f1_float32": round(per_model["float32"]["all"]["f1"], 4),
            "f1_int8": round(per_model["int8"]["all"]["f1"], 4),
            "int8_agreement": round(meta["metrics"]["agreement_with_keras"]["int8"]["all"], 4),
        }))


if __name__ == "__main__":
    main()
