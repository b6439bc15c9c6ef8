"""The ``edgepipe`` command line (also ``python -m edgepipe``).

Exit status: 0 success, 1 a component failed unexpectedly, 2 bad config/arguments/pipeline definition, 3 unusable
input data, 4 a converted model failed verification (nothing exported), 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from edgepipe.pipeline.errors import EdgepipeError


def _quiet_frameworks(verbose: bool) -> None:
    """Hide TensorFlow/absl/Beam log noise unless -v; must run before TensorFlow is imported."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("tensorflow", "absl", "apache_beam", "h5py", "tensorflow_model_optimization"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgepipe", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow/Beam logs")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a pipeline (default: configs/default.yaml)")
    run.add_argument("config", nargs="?", help="YAML file or bundled template name")
    run.add_argument("--output", default="bundle", help="where to write the exported bundle (default: ./bundle)")
    run.add_argument("--root", help="pipeline root: metadata and artifacts (default: pipeline.root)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set window.size=64 (repeatable)")
    run.add_argument("--no-cache", action="store_true", help="re-execute every component")

    runs = sub.add_parser("runs", help="list past runs")
    runs.add_argument("--root", default=".edgepipe")
    runs.add_argument("--limit", type=int, default=20)

    show = sub.add_parser("show", help="components, cache hits, artifacts and metrics of a run")
    show.add_argument("run_id", help="run id or a unique prefix ('latest' for the newest)")
    show.add_argument("--root", default=".edgepipe")
    show.add_argument("--json", action="store_true", help="print the record as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_frameworks(args.verbose)
    try:
        return {"run": cmd_run, "runs": cmd_runs, "show": cmd_show}[args.command](args)
    except EdgepipeError as err:
        print(f"edgepipe: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("edgepipe: interrupted; completed components stay cached, the next run resumes", file=sys.stderr)
        return 130


# ---- run ------------------------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from edgepipe.pipeline.config import load_config

    config = load_config(args.config, args.overrides)
    from edgepipe.pipeline.templates import build_pipeline  # imports components (TensorFlow, Beam): after validation

    pipeline = build_pipeline(config)
    root = Path(args.root or config.pipeline.root)
    from edgepipe.pipeline.runner import LocalRunner

    progress = ProgressPrinter(len(pipeline.nodes))
    runner = LocalRunner(root, use_cache=not args.no_cache, max_workers=config.pipeline.max_workers,
                         progress=progress)
    print(f"edgepipe: pipeline '{pipeline.name}' ({len(pipeline.nodes)} components), root {root}", flush=True)
    started = time.perf_counter()
    result = runner.run(pipeline, config.model_dump(mode="json"))
    elapsed = time.perf_counter() - started
    if result.error:
        print(f"run {result.run_id} failed after {elapsed:.1f}s", flush=True)
        raise result.error
    bundle_node = next((n for n in reversed(pipeline.nodes) if "bundle" in n.component.outputs), None)
    print(f"run {result.run_id} complete in {elapsed:.1f}s ({result.cache_hits}/{len(result.nodes)} cached)")
    if bundle_node is None:
        return 0
    bundle = result.artifact(bundle_node.name, "bundle")
    _print_summary(bundle.path)
    destination = bundle.copy_to(args.output)
    print(f"bundle written to {destination.resolve()}")
    return 0


class ProgressPrinter:
    """One line per component as it starts and ends, so a long run shows where it is."""

    def __init__(self, total: int):
        self.total = total
        self.finished = 0

    def __call__(self, event: str, node: Any, info: dict[str, Any]) -> None:
        if event == "start":
            print(f"[{self.finished + 1:>2}/{self.total}] {node.name:<28} running ...", flush=True)
            return
        self.finished += 1
        label = {"cached": "cached", "done": "done", "failed": "FAILED"}[event]
        print(f"[{self.finished:>2}/{self.total}] {node.name:<28} {label} ({info.get('seconds', 0):.1f}s)",
              flush=True)


def _print_summary(bundle_dir: Path) -> None:
    meta_file = bundle_dir / "bundle.json"
    if not meta_file.exists():
        return
    meta = json.loads(meta_file.read_text())
    for model, values in (meta.get("metrics") or {}).items():
        if isinstance(values, dict) and "f1" in values:
            print(f"  {model:<10} precision {values.get('precision', 0):.3f}  recall {values.get('recall', 0):.3f}"
                  f"  F1 {values['f1']:.3f}")


# ---- runs / show ----------------------------------------------------------------------------------------------------
def _store(root: str):
    from edgepipe.pipeline.errors import ConfigError
    from edgepipe.pipeline.metadata import MetadataStore

    path = Path(root) / "metadata.sqlite"
    if not path.exists():
        raise ConfigError(f"no pipeline root at '{root}' (missing {path.name}); run 'edgepipe run' first")
    return MetadataStore(path)


def cmd_runs(args: argparse.Namespace) -> int:
    rows = _store(args.root).runs(args.limit)
    print(f"{'RUN':<24} {'PIPELINE':<12} {'STATUS':<10} {'STARTED':<20} {'DURATION':>9} {'CACHED':>8}")
    for row in rows:
        duration = f"{row['ended'] - row['started']:.1f}s" if row["ended"] else "-"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started"]))
        print(f"{row['id']:<24} {row['pipeline']:<12} {row['status']:<10} {started:<20} {duration:>9} "
              f"{row['n_cached']:>3}/{row['n_exec']:<4}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from edgepipe.pipeline.errors import ConfigError

    store = _store(args.root)
    run_id = args.run_id
    if run_id == "latest":
        runs = store.runs(1)
        run_id = runs[0]["id"] if runs else run_id
    run = store.run(run_id)
    if run is None:
        raise ConfigError(f"no run '{args.run_id}' in {args.root}")
    executions = store.executions(run["id"])
    if args.json:
        print(json.dumps({"run": run, "executions": executions}, indent=2, default=str))
        return 0
    print(f"run {run['id']}  pipeline {run['pipeline']}  status {run['status']}")
    if run.get("error"):
        print(f"  error: {run['error']}")
    for ex in executions:
        seconds = f"{ex['ended'] - ex['started']:.1f}s" if ex["ended"] else "-"
        state = "cached" if ex["cached"] else ex["status"]
        print(f"- {ex['node']:<28} {state:<10} {seconds:>8}")
        for artifact in ex["artifacts"]:
            print(f"    {artifact['name']:<14} {artifact['type']:<18} {artifact['uri']}")
        metrics = json.loads(ex["metrics"] or "{}")
        if metrics:
            print(f"    metrics: {json.dumps(metrics, default=str)[:300]}")
        if ex["error"]:
            print(f"    error: {ex['error'].splitlines()[-1]}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
