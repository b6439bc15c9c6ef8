"""A run that is still going, as the UI sees it: planned nodes drawn pending, and the event stream delivering
progress and status changes as another writer records them, then ending with the run."""
from __future__ import annotations

import json
import re
import threading
import time

import pytest
from fastapi.testclient import TestClient

from edgepipe.ui.app import create_app
from tests.ui.conftest import live_run


@pytest.fixture
def running(ui_fixture, tmp_path):
    """A copy of the fixture's store with one more run, started by this (live) process and at its second node."""
    root, store, run_id, first = live_run(ui_fixture, tmp_path)
    store.complete_execution(first, {}, {}, {})
    second = store.start_execution(run_id, "compute_statistics", "compute_statistics", "v", "k2", {})
    return root, store, run_id, second


def test_a_running_run_shows_its_planned_nodes_pending(running, ui_fixture):
    root, store, run_id, _ = running
    with TestClient(create_app(root, start_worker=False)) as client:
        detail = client.get(f"/api/runs/{run_id}").json()
        assert detail["status"] == "running"
        assert [n["state"] for n in detail["node_list"]] == ["complete", "running"]
        assert detail["planned"] == ui_fixture.nodes[2:]  # from the last complete run of the same pipeline
        assert ["compute_statistics", "normalize"] in detail["edges"]
        svg = client.get(f"/runs/{run_id}/dag").text
        assert svg.count('class="node state-pending"') == 7 and svg.count('class="node state-running"') == 1
        page = client.get(f"/runs/{run_id}").text
        assert 'data-live="1"' in page and "/static/run.js" in page


def test_event_stream_follows_another_writer_until_the_run_ends(running):
    root, store, run_id, execution = running

    def writer():  # what the running pipeline does, from another thread (in real life another process)
        time.sleep(1.0)
        store.record_progress(execution, "epoch", 1, 2, {"loss": 0.5, "val_loss": 0.6})
        time.sleep(1.0)
        store.complete_execution(execution, {}, {}, {})
        store.end_run(run_id, "failed", "boom")

    thread = threading.Thread(target=writer)
    started = time.monotonic()
    with TestClient(create_app(root, start_worker=False)) as client:
        thread.start()
        with client.stream("GET", f"/runs/{run_id}/events") as response:
            text = "".join(response.iter_text())
    thread.join()
    assert time.monotonic() - started >= 2.0  # it waited for the writer, not just replayed
    events = [(k, json.loads(d)) for k, d in re.findall(r"event: (\w+)\ndata: (.*)\n\n", text)]
    kinds = [k for k, _ in events]
    assert kinds[0] == "node" and [n["state"] for n in events[0][1]] == ["complete", "running"]
    assert [d["status"] for k, d in events if k == "run"] == ["running", "failed"]
    progress = [d for k, d in events if k == "progress"]
    assert progress == [{**progress[0], "node": "compute_statistics", "kind": "epoch", "step": 1, "total": 2,
                         "values": {"loss": 0.5, "val_loss": 0.6}}]
    assert kinds.index("progress") > 0
    last_nodes = [d for k, d in events if k == "node"][-1]
    assert [n["state"] for n in last_nodes] == ["complete", "complete"]
    assert kinds[-2:] == ["run", "end"] and events[-1][1]["status"] == "failed"


def test_a_failed_node_shows_its_error_in_one_line(running):
    root, store, run_id, execution = running
    store.fail_execution(execution, "Traceback (most recent call last):\n  ...\nValueError: channel 'x' is constant")
    store.end_run(run_id, "failed", "compute_statistics failed: ValueError: channel 'x' is constant")
    with TestClient(create_app(root, start_worker=False)) as client:
        page = client.get(f"/runs/{run_id}").text
        assert re.search(r'<g class="node state-failed" id="node-compute_statistics"', page)
        errors = re.findall(r'<p class="error">(.*?)</p>', page, re.S)
        assert "ValueError: channel &#39;x&#39; is constant" in errors
        assert all("\n" not in e and "Traceback" not in e for e in errors)
        assert 'data-live="0"' in page  # nothing to follow any more
        runs = client.get("/api/runs", params={"status": "failed"}).json()["runs"]
        assert [r["id"] for r in runs] == [run_id]
