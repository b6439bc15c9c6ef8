"""Pages that read a root: the runs list, a run (DAG, nodes, variants, curves), its data, comparisons, and the
files of registered artifacts (the run's report among them). JSON twins under ``/api`` serve scripts and tests.
"""
from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse

from edgepipe.ui import runs as R
from edgepipe.ui import svg
from edgepipe.ui.app import UIError, ui
from edgepipe.ui.security import resolve_inside

router = APIRouter()
STATUSES = ("running", "complete", "failed", "interrupted", "abandoned")
MAX_REJECTS = 500
INTERNAL_STATS = {"quantiles_exact"}  # how a statistic was computed, not one to show
SPLIT_ORDER = ("train", "eval", "validation", "test")


def _run(request: Request, run_id: str) -> dict[str, Any]:
    run = ui(request).store.run(run_id)
    if run is None:
        raise UIError(404, f"no run '{run_id}' in {ui(request).root}")
    return run


@router.get("/", response_class=HTMLResponse)
def runs_page(request: Request, sort: str = "started", desc: int = 1, q: str = "", status: str = ""):
    items = R.list_runs(ui(request).store, sort, bool(desc), q, status)
    return ui(request).render(request, "runs.html", runs=items, sort=sort, desc=desc, q=q, status=status,
                              statuses=STATUSES, columns=R.SORT_KEYS)


@router.get("/api/runs")
def runs_api(request: Request, sort: str = "started", desc: int = 1, q: str = "", status: str = ""):
    return {"runs": R.list_runs(ui(request).store, sort, bool(desc), q, status)}


def _detail(request: Request, run_id: str) -> dict[str, Any]:
    return R.detail(ui(request).store, _run(request, run_id))


@router.get("/api/runs/{run_id}")
def run_api(request: Request, run_id: str):
    info = _detail(request, run_id)
    return {**info, "edges": [list(e) for e in info["edges"]]}


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str):
    info = _detail(request, run_id)
    curves = {node: svg.line_chart(series, css_class="chart loss") for node, series in info["curves"].items()}
    job = next((j for j in ui(request).queue.jobs() if j.get("run_id") == info["id"]), None)
    return ui(request).render(request, "run.html", run=info, dag=svg.dag(info["node_list"], info["edges"],
                              info["planned"]), curves=curves, job=job, log=_node_log_lines(request, info))


@router.get("/runs/{run_id}/dag", response_class=HTMLResponse)
def dag_fragment(request: Request, run_id: str):
    """The DAG alone, for scripts (the live run page refreshes graph, node panels and header from the page)."""
    info = _detail(request, run_id)
    return HTMLResponse(svg.dag(info["node_list"], info["edges"], info["planned"]))


def _run_log(request: Request, info: dict[str, Any]) -> tuple[str, Path | None]:
    """The console output of a run launched from the UI (its job log), else the framework log ``edgepipe run``
    wrote for it under ``ROOT/logs`` (named by the second the run started, just before the run id's)."""
    state = ui(request)
    job = next((j for j in state.queue.jobs() if j.get("run_id") == info["id"]), None)
    if job and state.queue.log_path(job["id"]).is_file():
        return "console", state.queue.log_path(job["id"])
    logs = sorted((state.root / "logs").glob("*.log")) if (state.root / "logs").is_dir() else []
    stamp = info["id"][:15]
    earlier = [p for p in logs if p.stem <= stamp]
    return "framework", (earlier[-1] if earlier else None)


def _node_log_lines(request: Request, info: dict[str, Any]) -> dict[str, list[str]]:
    """Per node: its recorded progress events, then the lines of the run's log naming it."""
    kind, path = _run_log(request, info)
    text = path.read_text(encoding="utf-8", errors="replace").splitlines() if path else []
    out: dict[str, list[str]] = {}
    for node in info["node_list"]:
        lines = [f"{e['kind']} {e['step']}/{e['total'] or '?'} " + " ".join(f"{k}={v}" for k, v in
                 e["payload"].items()) for e in ui(request).store.progress(execution_id=node["id"])]
        lines += [line for line in text if node["name"] in line]
        out[node["name"]] = lines[-200:]
    return out


@router.get("/runs/{run_id}/log", response_class=PlainTextResponse)
def run_log(request: Request, run_id: str):
    info = R.summary(ui(request).store, _run(request, run_id))
    kind, path = _run_log(request, info)
    if path is None:
        raise UIError(404, f"run {info['id']} has no log in {ui(request).root}")
    return PlainTextResponse(f"# {kind} log {path.name}\n" + path.read_text(encoding="utf-8", errors="replace"))


@router.get("/artifacts/{artifact_id}/{relative:path}")
def artifact_file(request: Request, artifact_id: str, relative: str):
    """A file of a registered artifact, and nothing else: the id must be in the store and the path must stay
    inside that artifact's directory once resolved."""
    artifact = ui(request).store.artifact(artifact_id)
    if artifact is None:
        raise UIError(404, f"no artifact '{artifact_id}'")
    path = resolve_inside(artifact["uri"], relative)
    if path is None:
        raise UIError(404, f"no file '{relative}' in artifact {artifact['name']} of run {artifact['run_id']}")
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix in (".json", ".jsonl", ".md", ".log", ".txt", ".csv"):
        media = "text/plain; charset=utf-8"
    return FileResponse(path, media_type=media)


@router.get("/runs/{run_id}/data", response_class=HTMLResponse)
def data_page(request: Request, run_id: str):
    """Statistics, schema and rejects of the run's ingest (the artifacts its data components registered)."""
    info = _detail(request, run_id)
    sections = {"statistics": None, "schema": None, "rejects": None}
    for node in info["node_list"]:
        for artifact in node["artifacts"]:
            folder = Path(artifact["uri"])
            if artifact["type"] == "ExampleStatistics":
                sections["statistics"] = _statistics(folder)
            elif artifact["type"] == "Schema":
                sections["schema"] = {"node": node["name"], "text": _read(folder / "schema.json")}
            elif artifact["type"] == "Rejects":
                sections["rejects"] = _rejects(folder, node["name"], artifact["id"])
    return ui(request).render(request, "data.html", run=info, **sections)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")[:200_000]
    except OSError:
        return ""


def _statistics(folder: Path) -> dict[str, Any] | None:
    doc = R._read_json(folder / "statistics.json")
    if not isinstance(doc, dict):
        return None
    splits = []
    order = lambda item: (SPLIT_ORDER.index(item[0]) if item[0] in SPLIT_ORDER else len(SPLIT_ORDER), item[0])  # noqa
    for split, body in sorted((doc.get("splits") or {}).items(), key=order):
        rows = []
        for name, stats in ((body or {}).get("channels") or (body or {}).get("features") or {}).items():
            hist = stats.get("histogram") or {}
            rows.append({"name": name, "stats": {k: v for k, v in stats.items() if isinstance(v, (int, float))
                                                 and not isinstance(v, bool) and k not in INTERNAL_STATS},
                         "hist": svg.histogram(hist.get("counts") or [], hist.get("edges") or [])})
        splits.append({"split": split, "rows": rows})
    return {"splits": splits, "raw_keys": sorted(doc)}


def _rejects(folder: Path, node: str, artifact_id: str) -> dict[str, Any]:
    meta = R._read_json(folder / "_artifact.json") or {}
    rows = []
    try:
        with (folder / "rejects.jsonl").open(encoding="utf-8") as handle:
            for line in handle:
                if len(rows) >= MAX_REJECTS:
                    break
                record = json.loads(line)
                where = {k: v for k, v in record.items() if k != "reason"}
                rows.append({"where": ", ".join(f"{k} {v}" for k, v in where.items()), "reason": record.get("reason")})
    except (OSError, ValueError):
        pass
    return {"node": node, "count": (meta.get("properties") or {}).get("count", len(rows)),
            "rows_read": (meta.get("properties") or {}).get("rows_read"), "rows": rows, "artifact": artifact_id}


def compare_data(request: Request, run_ids: list[str]) -> dict[str, Any]:
    """Config keys that differ, metrics per node, variant tables and training curves of two or more runs."""
    if len(run_ids) < 2:
        raise UIError(400, "compare needs two or more runs (tick them in the runs list)")
    infos = [_detail(request, run_id) for run_id in run_ids]
    ids = [info["id"] for info in infos]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise UIError(400, f"compare needs two or more different runs: {', '.join(twice)} is given twice")
    configs = [R.flatten(info["config"]) for info in infos]
    keys = sorted(set().union(*configs))
    diff = [{"key": k, "values": [c.get(k) for c in configs]} for k in keys
            if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]
    metric_keys: dict[str, None] = {}
    per_run = []
    for info in infos:
        flat = {}
        for node in info["node_list"]:
            for key, value in R.flatten(node["metrics"]).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    flat[f"{node['name']}.{key}"] = value
                    metric_keys.setdefault(f"{node['name']}.{key}")
        per_run.append(flat)
    metrics = [{"key": k, "values": [m.get(k) for m in per_run]} for k in metric_keys]
    overlay: dict[str, list[float]] = {}
    for info in infos:
        for node, series in info["curves"].items():
            for name, points in series.items():
                overlay[f"{info['id'][-6:]} {node} {name}"] = points
    return {"runs": infos, "diff": diff, "metrics": metrics, "overlay": overlay}


@router.get("/api/compare")
def compare_api(request: Request, run: list[str] = Query(default=[])):
    data = compare_data(request, run)
    return {"runs": [r["id"] for r in data["runs"]], "diff": data["diff"], "metrics": data["metrics"],
            "curves": data["overlay"], "variants": [r["variants"] for r in data["runs"]]}


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, run: list[str] = Query(default=[])):
    data = compare_data(request, run)
    height = max(280, 30 + 14 * len(data["overlay"]))  # room for the legend's lines beside the plot
    chart = svg.line_chart(data["overlay"], width=1000, height=height, css_class="chart overlay", legend_width=260)
    return ui(request).render(request, "compare.html", chart=chart, **data)
