"""DQN (TF-Agents) on CartPole-v0 through the reinforcement template (configs/dqn.yaml): average return of the
exported Q-network's greedy policy over 100 fresh episodes (target >= 195), and the CPU time it took.

    python benchmarks/dqn_cartpole.py [--budget-s 900] [--seed 0]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import resource
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import edgepipe  # noqa: E402,F401


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-s", type=float, default=900.0, help="wall-clock budget for training")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from edgepipe.pipeline.config import load_config
    from edgepipe.pipeline.runner import LocalRunner
    from edgepipe.pipeline.templates import build_pipeline

    with tempfile.TemporaryDirectory() as root:
        cfg = load_config("configs/dqn.yaml", [f"pipeline.root={root}", f"training.seed={args.seed}",
                                               f"training.time_budget_s={args.budget_s}"])
        started = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout to the one JSON line
            result = LocalRunner(root).run(build_pipeline(cfg), cfg.model_dump(mode="json"))
        if result.error:
            raise result.error
        wall = time.perf_counter() - started
        history = result.artifact("train_dqn", "model").read_json("history.json")
        evaluation = result.artifact("evaluate", "evaluation").read_json("evaluation.json")["metrics"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "benchmark": "dqn_cartpole", "env": "CartPole-v0", "average_return_100": evaluation["average_return"],
        "min_return": evaluation["min_return"], "episodes": evaluation["episodes"], "target": 195,
        "target_met": evaluation["average_return"] >= 195, "train_iterations": history["iterations"],
        "train_seconds": history["seconds"], "stopped": history["stopped"], "best_eval": history["best"],
        "pipeline_wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "cpu_count": os.cpu_count(), "budget_s": args.budget_s}))


if __name__ == "__main__":
    main()
