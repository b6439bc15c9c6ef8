"""The read-only commands of ``edgepipe``: ``runs``, ``show`` and ``models``.

Kept apart from :mod:`edgepipe.pipeline.cli` because they only read what a run left behind (the metadata store,
the model registry) and never build, execute or export a pipeline: they import no runner, no component and no
TensorFlow, and a change to how a run executes cannot break them (or the reverse). ``cli`` still owns the parser
and the one place every error becomes a line and an exit status.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from edgepipe.pipeline.errors import ConfigError, EdgepipeError


def check_root(root: Path) -> None:
    """A pipeline root is a directory (created if missing); a file there is a wrong --root, not a crash later."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"pipeline root {root} is a file, not a directory (--root / pipeline.root)")


def _store(root: str):
    from edgepipe.pipeline.metadata import MetadataStore

    check_root(Path(root))
    path = Path(root) / "metadata.sqlite"
    if not path.exists():
        raise ConfigError(f"no pipeline root at '{root}' (missing {path.name}); run 'edgepipe run' first")
    return MetadataStore(path)


def _mark_abandoned(store: Any) -> None:
    """Listing shows a run whose process died (kill -9, a crash) as ``abandoned``, not ``running``, recording it as
    the next run would; a store that cannot be written now (read-only, locked) is listed as it is."""
    try:
        store.mark_abandoned()
    except (sqlite3.Error, EdgepipeError):
        pass


def cmd_models(args: argparse.Namespace) -> int:
    from edgepipe.models.registry import available, family, hyperparameters

    if args.name:
        fam = family(args.name)
        print(f"{fam.name}: {fam.description}")
        print(f"  trainer: {fam.trainer}; tasks: {', '.join(fam.tasks)}; variants: "
              + (fam.variants or f"float32 only ({fam.float_reason})"))
        for key, default in hyperparameters(args.name).items():
            print(f"  {key} = {default!r}")
        return 0
    families = available()
    width = max(map(len, families))
    for name, description in families.items():
        print(f"{name:<{width}}  {description}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    store = _store(args.root)
    _mark_abandoned(store)
    rows = store.runs(args.limit)
    print(f"{'RUN':<24} {'PIPELINE':<12} {'STATUS':<11} {'STARTED':<20} {'DURATION':>9} {'CACHED':>8}")
    for row in rows:
        duration = f"{row['ended'] - row['started']:.1f}s" if row["ended"] else "-"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started"]))
        print(f"{row['id']:<24} {row['pipeline']:<12} {row['status']:<11} {started:<20} {duration:>9} "
              f"{row['n_cached']:>3}/{row['n_exec']:<4}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args.root)
    _mark_abandoned(store)
    run_id = args.run_id
    if run_id == "latest":
        runs = store.runs(1)
        run_id = runs[0]["id"] if runs else run_id
    run = store.run(run_id)
    if run is None:
        raise ConfigError(f"no run '{args.run_id}' in {args.root}")
    executions = store.executions(run["id"])
    if args.open:
        return _open_report(run, executions)
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


def _open_report(run: dict[str, Any], executions: list[dict[str, Any]]) -> int:
    from edgepipe.components.report.locate import find_report, open_report

    path = find_report(executions)
    if path is None:
        raise ConfigError(f"run {run['id']} has no report (no render_report node, or it did not complete)")
    print(path.resolve())
    open_report(path)
    return 0
