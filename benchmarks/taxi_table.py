"""The built-in tabular template (``template: supervised``, a CSV source) on the whole taxi sample: regression of
``tips`` and classification of TFX's ``big_tipper``, each next to its trivial baseline on the same test split.

What it measures (README "Tables"): for ``tips``, the test MAE of the Keras model, of the shipped int8 (PTQ) model
and their agreement, against always predicting the train split's median tip; for ``big_tipper`` (tips > 20% of the
fare, in cents: ``examples/taxi_tips/label.py`` ``big_tips``, the one rule), the test accuracy of both models
against always predicting the train split's majority class. The baselines read the very rows the run's
``ingest_csv`` put in train and test, so they share the model's split. ``big_tipper`` is a column of a copy of the
CSV without ``tips`` (written to a temporary folder: the CSV's own rows, so its split differs from the tips run's).
Also printed: the sample's blank cells and the model inputs the transform makes. Prints one JSON line.

    python benchmarks/taxi_table.py [--epochs 20] [--seed 0]    # from the repository root; a few minutes on 2 cores
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import edgepipe  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]
TAXI = REPO.parent / "shared" / "datasets" / "taxi" / "data.csv"
MISSING = ("", "NA", "NaN", "null")  # ingest_csv's default missing values


def _big_tips():
    """``big_tips`` from examples/taxi_tips/label.py (the example is a project folder, not a package import)."""
    spec = importlib.util.spec_from_file_location("taxi_tips_label", REPO / "examples" / "taxi_tips" / "label.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.big_tips


def write_big_tipper_csv(source: Path, target: Path) -> dict[str, int]:
    """``source`` with ``tips`` replaced by ``big_tipper`` (1/0; a missing tip or fare: 0). Returns its counts."""
    with source.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    tips_at, fare_at = header.index("tips"), header.index("fare")
    number = lambda text: float(text) if text.strip() not in MISSING else np.nan  # noqa: E731
    labels = _big_tips()([number(r[tips_at]) for r in rows], [number(r[fare_at]) for r in rows])
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([c for c in header if c != "tips"] + ["big_tipper"])
        writer.writerows([v for i, v in enumerate(r) if i != tips_at] + [str(y)] for r, y in zip(rows, labels))
    return {"rows": len(rows), "big_tippers": int(labels.sum())}


def blank_cells(source: Path) -> int:
    with source.open(newline="") as handle:
        return sum(cell.strip() in MISSING for row in list(csv.reader(handle))[1:] for cell in row)


def median_mae(train: np.ndarray, test: np.ndarray) -> float:
    """Test MAE of always predicting the train split's median."""
    return float(np.abs(test - np.median(train)).mean())


def majority_rate(train: np.ndarray, test: np.ndarray) -> float:
    """Test accuracy of always predicting the train split's most frequent class."""
    values, counts = np.unique(train, return_counts=True)
    return float(np.mean(test == values[np.argmax(counts)]))


def run(source: Path, label: str, task: str, root: Path, epochs: int, seed: int) -> dict:
    from edgepipe.pipeline.config import load_config
    from edgepipe.pipeline.runner import LocalRunner
    from edgepipe.pipeline.templates import build_pipeline

    config = root / f"{task}.yaml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "pipeline": {"name": f"taxi-{task}", "template": "supervised", "root": str(root / task)},
        "data": {"source": str(source), "label_column": label},
        "model": {"family": "mlp", "task": task},
        "training": {"epochs": epochs, "batch_size": 64, "seed": seed, "checkpoints": False},
        "convert": {"variants": ["float32", "int8_ptq"], "primary": "int8_ptq"},
        "evaluate": {"split": "test", "latency_runs": 2}}))
    cfg = load_config(str(config))
    started = time.perf_counter()
    result = LocalRunner(str(root / task)).run(build_pipeline(cfg), cfg.model_dump(mode="json"))
    if result.error and "evaluate" not in result.nodes:
        raise result.error
    evaluation = result.artifact("evaluate", "evaluation")  # exists even where the export gate refused
    examples = result.artifact("ingest_csv", "examples")
    train, test = (examples.read_numpy(s)["label"].astype(np.float64) for s in ("train", "test"))
    rows = {r.variant: r for r in evaluation.variant_rows()}
    inputs = len(result.artifact("transform_features", "params").read_json("transform.json")["outputs"])
    name = "mae" if task == "regression" else "accuracy"
    out = {"test_examples": len(test), "model_inputs": inputs, f"keras_{name}": rows["keras"].metric,
           f"int8_{name}": rows["int8_ptq"].metric, "int8_agreement_with_keras": rows["int8_ptq"].agreement,
           "export": "refused: " + str(result.error).splitlines()[0] if result.error else "ok",
           "seconds": round(time.perf_counter() - started, 1)}
    if task == "regression":
        out["median_tip_mae"] = median_mae(train, test)
    else:
        out["majority_class_rate"] = majority_rate(train, test)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgepipe-taxi-table-") as tmp:
        derived = Path(tmp) / "taxi_big_tipper.csv"
        counts = write_big_tipper_csv(TAXI, derived)
        tips = run(TAXI, "tips", "regression", Path(tmp), args.epochs, args.seed)
        big = run(derived, "big_tipper", "classification", Path(tmp), args.epochs, args.seed)
    print(json.dumps({"benchmark": "taxi_table", "seed": args.seed, "epochs": args.epochs, "rows": counts["rows"],
                      "blank_cells": blank_cells(TAXI), "tips": tips,
                      "big_tipper": {**big, "big_tipper_rate": round(counts["big_tippers"] / counts["rows"], 4)}}))


if __name__ == "__main__":
    main()
