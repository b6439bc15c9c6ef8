"""What the pages show about runs, read from the metadata store (never written: the UI only observes a root).

Everything here turns store rows into plain dicts a template can print: a run's summary line (template, family,
effective status, duration, cache hits, headline metric, bundle), its nodes with their artifacts and lineage, the
DAG's edges, training curves and the variant table. A run whose process is gone while the store still says
``running`` is shown ``abandoned`` (what the next ``edgepipe run`` will record), without writing that here.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from edgepipe.pipeline.metadata import MetadataStore, is_abandoned

SORT_KEYS = ("started", "id", "pipeline", "template", "family", "status", "duration", "cached", "metric")
FINISHED = ("complete", "failed", "interrupted", "abandoned")


def status_of(run: dict[str, Any]) -> str:
    """The run's status as the next run will see it: ``running`` with a dead process (on this host) is
    ``abandoned``."""
    return "abandoned" if is_abandoned(run) else run["status"]


def load_json(text: str | None, default: Any = None) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def variant_rows(executions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's variant table: the exported bundle's ``variants.json`` (it marks the primary), else the
    evaluation's."""
    best: list[dict[str, Any]] = []
    for execution in executions:
        for artifact in execution["artifacts"]:
            rows = _read_json(Path(artifact["uri"]) / "variants.json")
            if isinstance(rows, list) and rows and isinstance(rows[0], dict) and "metric" in rows[0]:
                if artifact["type"] == "Bundle":
                    return rows
                best = rows
    return best


def headline(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The primary variant's task metric (else the Keras model's): what one column of the runs list can say."""
    for wanted in (lambda r: r.get("primary"), lambda r: r.get("variant") == "keras"):
        row = next((r for r in rows if wanted(r)), None)
        if row and isinstance(row.get("metric"), (int, float)):
            return {"name": row.get("metric_name") or "metric", "value": float(row["metric"]),
                    "variant": row.get("variant")}
    return None


MAX_FILES = 200


def artifact_files(uri: str, limit: int = MAX_FILES) -> list[dict[str, Any]]:
    """The artifact directory's files (relative path, bytes), as ``/artifacts/ID/PATH`` serves them: what a node
    panel links, so the model, its C array and the bundle's files can be taken from the UI. Links and folders are
    not listed (the server refuses what resolves outside the directory anyway); at most ``limit`` files."""
    folder = Path(uri)
    files: list[dict[str, Any]] = []
    try:
        inside = folder.resolve()
        paths = sorted(folder.rglob("*"))
    except OSError:
        return files
    for path in paths:
        if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(inside):
            continue
        try:
            files.append({"path": path.relative_to(folder).as_posix(), "size": path.stat().st_size})
        except (OSError, ValueError):
            continue
        if len(files) >= limit:
            break
    return files


def find_artifact(executions: list[dict[str, Any]], type_name: str) -> dict[str, Any] | None:
    for execution in reversed(executions):
        for artifact in execution["artifacts"]:
            if artifact["type"] == type_name:
                return artifact
    return None


def summary(store: MetadataStore, run: dict[str, Any], executions: list[dict[str, Any]] | None = None,
            now: float | None = None) -> dict[str, Any]:
    executions = store.executions(run["id"]) if executions is None else executions
    config = load_json(run.get("config"), {}) or {}
    status = status_of(run)
    end = run.get("ended") or (now or time.time() if status == "running" else run["started"])
    rows = variant_rows(executions)
    bundle = find_artifact(executions, "Bundle")
    report = find_artifact(executions, "Report")
    return {
        "id": run["id"], "pipeline": run["pipeline"], "status": status, "started": run["started"],
        "started_text": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started"])),
        "duration": max(0.0, end - run["started"]),
        "template": (config.get("pipeline") or {}).get("template", ""),
        "family": (config.get("model") or {}).get("family", ""),
        "nodes": len(executions), "cached": sum(1 for e in executions if e["cached"]),
        "metric": headline(rows), "bundle": bundle["id"] if bundle else None,
        "report": report["id"] if report and (Path(report["uri"]) / "report.html").is_file() else None,
        "error": ((run.get("error") or "").strip().splitlines() or [None])[-1],  # its last line; none: null
    }


def list_runs(store: MetadataStore, sort: str = "started", descending: bool = True, query: str = "",
              status: str = "", limit: int = 500) -> list[dict[str, Any]]:
    """Run summaries filtered by a text (id, pipeline, template, family) and a status, sorted by one column."""
    now = time.time()
    items = [summary(store, run, now=now) for run in store.runs(limit)]
    text = query.strip().lower()
    if text:
        items = [r for r in items if any(text in str(r[k]).lower() for k in ("id", "pipeline", "template", "family"))]
    if status:
        items = [r for r in items if r["status"] == status]
    key = sort if sort in SORT_KEYS else "started"

    def value(item: dict[str, Any]) -> Any:
        if key == "metric":
            return item["metric"]["value"] if item["metric"] else float("-inf")
        return item[key]

    return sorted(items, key=value, reverse=descending)


def node_state(execution: dict[str, Any], run_status: str) -> str:
    """A node's status for colouring: ``cached`` for a cache hit; a node still ``running`` in a run that ended
    is shown with the run's end (interrupted / abandoned)."""
    if execution["cached"]:
        return "cached"
    state = execution["status"]
    if state == "running" and run_status in ("abandoned", "interrupted", "failed"):
        return run_status if run_status != "failed" else "abandoned"
    return state


def detail(store: MetadataStore, run: dict[str, Any]) -> dict[str, Any]:
    """Everything the run page shows: summary, nodes (params, metrics, artifacts, inputs with the run that
    produced them, error, timing), DAG edges (with the planned nodes not started yet), variants and curves."""
    executions = store.executions(run["id"])
    info = summary(store, run, executions)
    links = store.events(run["id"])
    nodes = []
    for execution in executions:
        inputs = [link for link in links if link["execution_id"] == execution["id"] and link["kind"] == "input"]
        source_run = None
        if execution["source_execution"]:
            source = store.artifact(execution["artifacts"][0]["id"]) if execution["artifacts"] else None
            source_run = source["run_id"] if source else None
        ended = execution["ended"] or (time.time() if execution["status"] == "running" else execution["started"])
        nodes.append({
            "name": execution["node"], "component": execution["component"], "id": execution["id"],
            "state": node_state(execution, info["status"]), "cached": bool(execution["cached"]),
            "seconds": max(0.0, ended - execution["started"]), "params": load_json(execution["params"], {}),
            "metrics": load_json(execution["metrics"], {}) or {},
            "artifacts": [{**a, "files": artifact_files(a["uri"])} for a in execution["artifacts"]],
            "inputs": inputs, "cached_from_run": source_run, "code_version": execution["code_version"],
            "error": execution["error"] or "",
        })
    edges = sorted({(link["producer_node"], link["node"]) for link in links if link["kind"] == "input"})
    planned_edges, planned = plan(store, run, {n["name"] for n in nodes})
    return {**info, "config": load_json(run.get("config"), {}) or {}, "run_error": run.get("error") or "",
            "node_list": nodes, "edges": sorted(set(edges) | planned_edges), "planned": planned,
            "variants": variant_rows(executions), "curves": curves(store, executions)}


def plan(store: MetadataStore, run: dict[str, Any], present: set[str]) -> tuple[set[tuple[str, str]], list[str]]:
    """Edges and not-yet-started nodes of a run still going, taken from the newest finished run of the same
    pipeline name (the store records a node only once it starts, and its inputs only once it completes)."""
    if status_of(run) != "running":
        return set(), []
    for other in store.runs(200):
        if other["pipeline"] != run["pipeline"] or other["id"] == run["id"] or other["status"] != "complete":
            continue
        names = [e["node"] for e in store.executions(other["id"])]
        edges = {(link["producer_node"], link["node"]) for link in store.events(other["id"])
                 if link["kind"] == "input"}
        return edges, [n for n in names if n not in present]
    return set(), []


def curves(store: MetadataStore, executions: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Per training node, each loss reported per epoch ({node: {"loss": [...], "val_loss": [...]}}); a cache hit
    shows the curves of the execution it reused."""
    out: dict[str, dict[str, list[float]]] = {}
    for execution in executions:
        source = execution["source_execution"] or execution["id"]
        series: dict[str, list[float]] = {}
        for event in store.progress(execution_id=source, kind="epoch"):
            for name, value in event["payload"].items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and "loss" in name:
                    series.setdefault(name, []).append(float(value))
        if series:
            out[execution["node"]] = series
    return out


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists kept whole): for config diffs and metric tables."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}
