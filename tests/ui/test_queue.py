"""The launch queue with its real worker: one job at a time, cancel = the CLI's first Ctrl-C (the run ends
``interrupted``), resume = the same job again, whose completed components are cache hits."""
from __future__ import annotations

import time

from edgepipe.pipeline.metadata import MetadataStore
from edgepipe.ui.jobs import JobQueue

LONG = ["training.epochs=200"]  # far longer than the test waits: it is cancelled while training


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_jobs_run_one_at_a_time_and_cancel_is_a_resumable_interrupt(ui_fixture):
    store = MetadataStore(ui_fixture.root / "metadata.sqlite")
    queue = JobQueue(ui_fixture.root, store, workdir=ui_fixture.workdir)
    queue.start()
    config = ui_fixture.configs / "tiny.yaml"
    try:
        first = queue.submit(config, LONG)
        second = queue.submit(config, ["training.epochs=1"])
        run_id = wait_for(lambda: queue.get(first["id"])["run_id"], 300, "the first job's run")
        assert queue.get(first["id"])["status"] == "running"
        assert queue.get(second["id"])["status"] == "queued"  # one at a time
        wait_for(lambda: store.progress(run_id=run_id, kind="epoch"), 300, "a training epoch")
        assert queue.cancel(second["id"]) == "cancelled"
        assert queue.cancel(first["id"]) == "interrupting"
        job = wait_for(lambda: (j := queue.get(first["id"]))["status"] != "running" and j, 120, "the interrupt")
        assert (job["status"], job["exit_code"]) == ("interrupted", 130)
        assert store.run(run_id)["status"] == "interrupted"
        assert queue.get(second["id"])["status"] == "cancelled"  # never started
        assert "interrupted; completed components stay cached" in queue.log_path(first["id"]).read_text()

        again = queue.submit(config, LONG)  # what the Resume button does
        resumed = wait_for(lambda: queue.get(again["id"])["run_id"], 300, "the resumed run")
        wait_for(lambda: any(e["node"] == "train_autoencoder" for e in store.executions(resumed)), 300,
                 "training to start again")
        # every component the interrupted run completed is reused (same cache key: same code, params, inputs;
        # a key differs only where the source tree changed in between, as in a shared working tree)
        done = {e["cache_key"] for e in store.executions(run_id) if e["status"] == "complete"}
        assert len(done) >= 4
        again_nodes = [e for e in store.executions(resumed) if e["node"] != "train_autoencoder"]
        assert len(again_nodes) == 4
        assert all(e["cached"] for e in again_nodes if e["cache_key"] in done)
        queue.cancel(again["id"])
        wait_for(lambda: queue.get(again["id"])["status"] == "interrupted", 120, "the second interrupt")
    finally:
        queue.close()
    reopened = JobQueue(ui_fixture.root, store)  # the queue file survives a restart of the UI
    assert [j["status"] for j in reopened.jobs()][:3] == ["interrupted", "cancelled", "interrupted"]
