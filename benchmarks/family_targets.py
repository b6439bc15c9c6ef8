"""Quality targets of the supervised family configs, run end to end through their pipelines (fresh root).

* ``mlp`` on penguins (configs/mlp.yaml): test accuracy >= 0.95
* ``cnn`` on scikit-learn digits, held-out 20% (configs/cnn.yaml): test accuracy >= 0.97

Prints one JSON line. Run from the repository root (the penguins CSV is under ../shared).

    python benchmarks/family_targets.py [--families mlp cnn] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import edgepipe  # noqa: E402,F401

TARGETS = {"mlp": 0.95, "cnn": 0.97}


def run(config: str, root: str, seed: int) -> dict:
    from edgepipe.pipeline.config import load_config
    from edgepipe.pipeline.runner import LocalRunner
    from edgepipe.pipeline.templates import build_pipeline

    cfg = load_config(config, [f"pipeline.root={root}", f"training.seed={seed}", "training.checkpoints=false"])
    pipeline = build_pipeline(cfg)
    started = time.perf_counter()
    result = LocalRunner(root).run(pipeline, cfg.model_dump(mode="json"))
    if result.error:
        raise result.error
    evaluation = result.artifact("evaluate", "evaluation").read_json("evaluation.json")
    return {"seed": seed, "test_accuracy": evaluation["metrics"]["accuracy"],
            "test_examples": evaluation["metrics"]["examples"], "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--families", nargs="+", default=list(TARGETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args()
    out: dict = {"benchmark": "family_targets", "cpu_count": os.cpu_count()}
    for family in args.families:
        runs = []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as root, contextlib.redirect_stdout(sys.stderr):  # Keras progress
                runs.append(run(f"configs/{family}.yaml", root, seed))
        accs = [r["test_accuracy"] for r in runs]
        out[family] = {"target": TARGETS[family], "runs": runs, "min_test_accuracy": min(accs),
                       "mean_test_accuracy": sum(accs) / len(accs), "target_met": min(accs) >= TARGETS[family]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
