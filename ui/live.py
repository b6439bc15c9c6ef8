"""Server-sent events for a run page: the store's progress events and node/run status changes as they happen.

The running pipeline is another process (``edgepipe run``, a queued job, or a terminal), so the only shared truth is
the metadata store: this stream polls it (SQLite in WAL mode lets readers in while the run writes) and sends

* ``progress``: each recorded event (epoch with its losses, batches, conversions, evaluation windows), replayed
  from the start of the run first so a page opened mid-training still draws the whole curve;
* ``node``: the nodes' states and times whenever one starts or ends (the page then redraws the DAG);
* ``run``: the run's status whenever it changes; ``end`` once it is finished, and the stream closes.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from edgepipe.ui import runs as R
from edgepipe.ui.app import UIError, ui

router = APIRouter()
POLL_S = 0.5
HEARTBEAT_S = 15.0


def _message(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _snapshot(store, run_id: str, seen: int) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    run = store.run(run_id)
    status = R.status_of(run)
    now = time.time()
    nodes = []
    for execution in store.executions(run_id):
        end = execution["ended"] or (now if execution["status"] == "running" else execution["started"])
        nodes.append({"name": execution["node"], "state": R.node_state(execution, status),
                      "seconds": round(end - execution["started"], 1), "cached": bool(execution["cached"])})
    events = store.progress(run_id=run_id)[seen:]  # time-ordered; new events only ever append
    return {"status": status, "duration": round((run["ended"] or now) - run["started"], 1)}, nodes, events


async def stream(request: Request, run_id: str, poll_s: float = POLL_S) -> AsyncIterator[str]:
    store = ui(request).store
    seen, last_nodes, last_status, quiet = 0, None, None, time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        run, nodes, events = await run_in_threadpool(_snapshot, store, run_id, seen)
        for event in events:
            yield _message("progress", {"node": event["node"], "kind": event["kind"], "step": event["step"],
                                        "total": event["total"], "values": event["payload"], "time": event["time"]})
        seen += len(events)
        shape = [(n["name"], n["state"]) for n in nodes]
        if shape != last_nodes or events:
            yield _message("node", nodes)
            last_nodes = shape
            quiet = time.monotonic()
        if run["status"] != last_status:
            yield _message("run", run)
            last_status = run["status"]
        if run["status"] in R.FINISHED:
            yield _message("end", run)
            return
        if time.monotonic() - quiet > HEARTBEAT_S:
            yield ": keep-alive\n\n"
            quiet = time.monotonic()
        if await request.is_disconnected():
            return
        await asyncio.sleep(poll_s)


@router.get("/runs/{run_id}/events")
async def events(request: Request, run_id: str):
    run = await run_in_threadpool(ui(request).store.run, run_id)
    if run is None:
        raise UIError(404, f"no run '{run_id}'")
    return StreamingResponse(stream(request, run["id"]), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
