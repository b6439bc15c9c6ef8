"""Budget search against the unconstrained default detector (issue 16's search target).

Runs the default pipeline unconstrained (``configs/default.yaml`` as shipped: every variant, the export gate's
primary) and then the budget search on the same pipeline root (``search.trials`` Optuna trials over the default
``search.space``, target ``flash_kb: 64, ram_kb: 32``), and compares the F1 of the two exported int8 models on the
eval+test windows (``bundle.json``). Prints one JSON line:

    {"benchmark": "search", "unconstrained": {...}, "search": {...}, "f1_gap_points": ..., "within_2_points": ...}

Target (issue 16): under a budget of 64 KB flash and 32 KB RAM the search finds a default pipeline detector within
2 F1 points of the unconstrained one.

Usage: python benchmarks/search.py [--trials 8] [--epochs 20] [--root DIR (reused: a rerun is cached)]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run(root: Path, output: Path, overrides: list[str]) -> float:
    """``edgepipe run`` in this process (its output to stderr, so stdout is the one JSON line); seconds taken."""
    from edgepipe.pipeline import cli

    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        code = cli.main(["run", "--root", str(root), "--output", str(output),
                         *[a for o in overrides for a in ("--set", o)]])
    if code:
        raise SystemExit(f"benchmarks/search.py: edgepipe run {' '.join(overrides)} exited {code}")
    return round(time.perf_counter() - started, 1)


def exported(output: Path) -> dict:
    """The shipped int8 model's variant, F1, flash (model.tflite bytes) from the bundle."""
    meta = json.loads((output / "bundle.json").read_text())
    f1 = ((meta.get("metrics", {}).get("per_model") or {}).get("int8") or {}).get("all", {}).get("f1")
    return {"variant": meta.get("primary_variant"), "f1": f1, "flash_bytes": (output / "model.tflite").stat().st_size}


def search_record(root: Path) -> dict:
    from edgepipe.pipeline.metadata import MetadataStore

    store = MetadataStore(root / "metadata.sqlite")
    for execution in store.executions(store.runs(1)[0]["id"]):
        for artifact in execution["artifacts"]:
            if artifact["type"] == "SearchResults":
                return json.loads((Path(artifact["uri"]) / "search.json").read_text())
    raise SystemExit("benchmarks/search.py: the search run recorded no search.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20, help="training.epochs of every run (default: the config's)")
    parser.add_argument("--seed", type=int, default=0, help="search.seed")
    parser.add_argument("--root", help="pipeline root (default: a temporary one)")
    args = parser.parse_args()
    root = Path(args.root or tempfile.mkdtemp(prefix="edgepipe-search-"))
    common = [f"training.epochs={args.epochs}"]
    free_s = run(root, root.parent / f"{root.name}-bundle-unconstrained", common)
    free = exported(root.parent / f"{root.name}-bundle-unconstrained")
    budget = ["target.flash_kb=64", "target.ram_kb=32"]
    search_s = run(root, root.parent / f"{root.name}-bundle-search",
                   [*common, *budget, f"search.trials={args.trials}", f"search.seed={args.seed}"])
    found = exported(root.parent / f"{root.name}-bundle-search")
    record = search_record(root)
    best = next(t for t in record["trials"] if t.get("best"))
    gap = None if free["f1"] is None or found["f1"] is None else round(100 * (free["f1"] - found["f1"]), 2)
    print(json.dumps({
        "benchmark": "search", "epochs": args.epochs, "budget": {"flash_kb": 64, "ram_kb": 32},
        "unconstrained": {**free, "seconds": free_s},
        "search": {**found, "arena_bytes": best.get("arena_bytes"), "params": best["params"],
                   "trials": len(record["trials"]), "feasible": sum(bool(t.get("feasible")) for t in record["trials"]),
                   "pareto": sum(bool(t.get("pareto")) for t in record["trials"]), "sampler": record["sampler"],
                   "seconds": search_s},
        "f1_gap_points": gap, "within_2_points": gap is not None and gap <= 2.0}))


if __name__ == "__main__":
    main()
