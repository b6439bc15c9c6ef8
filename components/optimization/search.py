"""record_search: a budget search's trials as an artifact (``search.json``), for the report and the metadata store.

Why a component: the search itself drives whole pipeline runs (``pipeline/search.py``), which a component may not;
its outcome, though, is a product of the run like any other (cached, in lineage, drawn by the report's search
section), so the driver hands the trials to this component in the best trial's final run.
"""
from __future__ import annotations

from typing import Any

from edgepipe.pipeline.artifacts import SearchResults
from edgepipe.pipeline.component import Output, component


@component(version="1")
def record_search(search: Output[SearchResults], record: dict[str, Any]) -> dict:
    """Write ``record`` (trials: params, metric, flash, arena, latency, energy, fits, pareto; best; target; space)
    to ``search.json``; the metrics are the trial count, the feasible count and the best trial's metric."""
    trials = record.get("trials") or []
    chosen = next((t for t in trials if t.get("number") == record.get("best")), None)
    search.write_json(SearchResults.filename, record)
    search.properties.update(file=SearchResults.filename, trials=len(trials), best=record.get("best"))
    return {"trials": len(trials), "feasible": sum(bool(t.get("feasible")) for t in trials),
            "pareto": sum(bool(t.get("pareto")) for t in trials),
            "best_metric": chosen.get("metric") if chosen else None}
