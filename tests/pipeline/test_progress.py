"""Progress events and stop requests: what components report reaches the store and the display, a requested stop
ends the run ``interrupted`` with nothing registered, and the next run completes."""
from __future__ import annotations

import pytest

from edgepipe.pipeline import progress
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.component import Output, component
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.runner import LocalRunner


@component
def count(out: Output[Examples], steps: int = 5) -> dict:
    """Counts to ``steps``, reporting each step and stopping between steps when asked."""
    for step in range(1, steps + 1):
        progress.check_stop()
        progress.report("epoch", step, steps, loss=1.0 / step)
    out.write_json("value.json", {"value": steps})
    return {"value": steps}


def test_reports_reach_the_store_and_the_progress_callback(tmp_path):
    seen = []
    runner = LocalRunner(tmp_path, progress=lambda event, node, info: seen.append((event, node.name, info)))
    result = runner.run(Pipeline("p", [count(steps=3)]))
    events = [info["event"] for event, _, info in seen if event == "progress"]
    assert [(e.kind, e.step, e.total, e.values["loss"]) for e in events] == [
        ("epoch", 1, 3, 1.0), ("epoch", 2, 3, 0.5), ("epoch", 3, 3, 1 / 3)]
    stored = runner.store.progress(run_id=result.run_id)
    assert [(r["node"], r["kind"], r["step"], r["total"], r["payload"]) for r in stored] == [
        ("count", "epoch", 1, 3, {"loss": 1.0}), ("count", "epoch", 2, 3, {"loss": 0.5}),
        ("count", "epoch", 3, 3, {"loss": 1 / 3})]
    assert {r["execution_id"] for r in stored} == {result.nodes["count"].execution_id}


def test_requested_stop_interrupts_the_run_and_the_next_run_completes(tmp_path):
    runner = LocalRunner(tmp_path)

    def stop_at_2(event, node, info):
        if event == "progress" and info["event"].step == 2:
            runner.request_stop()

    runner.progress = stop_at_2
    with pytest.raises(progress.StopRequested):
        runner.run(Pipeline("p", [count(steps=5), count(steps=6).named("after")]))
    (run,) = runner.store.runs()
    assert run["status"] == "interrupted"
    executions = runner.store.executions(run["id"])
    assert [(e["node"], e["status"], e["artifacts"]) for e in executions] == [("count", "interrupted", [])]
    assert [r["step"] for r in runner.store.progress(run_id=run["id"])] == [1, 2]

    again = LocalRunner(tmp_path).run(Pipeline("p", [count(steps=5), count(steps=6).named("after")]))
    assert again.status == "complete" and again.artifact("after", "out").read_json("value.json") == {"value": 6}


def test_fine_grained_reports_are_throttled_but_the_last_step_is_kept():
    got = []
    with progress.bound(progress.Execution("n", sink=got.append)):
        for step in range(1, 1001):
            progress.report("batch", step, 1000)
        progress.report("epoch", 1, 2)
        progress.report("epoch", 2, 2)
    assert [(e.kind, e.step) for e in got] == [("batch", 1), ("batch", 1000), ("epoch", 1), ("epoch", 2)]


def test_outside_an_execution_reporting_and_stop_checks_do_nothing():
    assert progress.report("epoch", 1, 2, loss=0.5) is False
    progress.check_stop()
    assert progress.cache_key() is None
