"""Progress events and stop requests: what components report reaches the store and the display, a requested stop
ends the run ``interrupted`` with nothing registered, and the next run completes."""
from __future__ import annotations

import pytest

from edgepipe.pipeline import progress
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.component import Output, component
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.runner import LocalRunner
from tests.pipeline.conftest import sigint_as_on_a_terminal


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


ABORT_SCRIPT = """
import sys
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.display import ProgressPrinter, leave_after_interrupt, stop_on_ctrl_c
from edgepipe.pipeline.runner import LocalRunner
from tests.pipeline import fixture_components as fx

a = fx.source(value=2)
s = fx.slow(examples=a.outputs["out"], marker=sys.argv[2])
printer = ProgressPrinter(2)
runner = LocalRunner(sys.argv[1], progress=printer)
try:
    with stop_on_ctrl_c(runner, printer):
        runner.run(Pipeline("abort", [a, s]))
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr, flush=True)
    leave_after_interrupt(130, program=True)
"""


def test_second_ctrl_c_aborts_a_component_that_does_not_stop_and_the_next_run_completes(tmp_path):
    """``slow`` sleeps without checking the stop flag: the first Ctrl-C only asks, the second ends the process at
    once with the run ``interrupted`` and nothing of ``slow`` registered."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.pipeline import fixture_components as fx

    root, marker = tmp_path / "root", tmp_path / "marker"
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", ABORT_SCRIPT, str(root), str(marker)], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_on_a_terminal)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "component never started"
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert proc.poll() is None  # still waiting for the component's next step boundary
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - sent < 3
    assert "stopping after the current step ... (Ctrl-C again to abort now)" in err and "interrupted" in err

    runner = LocalRunner(root)
    (run,) = runner.store.runs()
    assert run["status"] == "interrupted"
    statuses = {e["node"]: (e["status"], e["artifacts"]) for e in runner.store.executions(run["id"])}
    assert statuses["slow"] == ("interrupted", [])
    os.environ["EDGEPIPE_TEST_NO_SLEEP"] = "1"
    try:
        a = fx.source(value=2)
        result = runner.run(Pipeline("abort", [a, fx.slow(examples=a.outputs["out"], marker=str(marker))]))
    finally:
        del os.environ["EDGEPIPE_TEST_NO_SLEEP"]
    assert result.status == "complete" and result.nodes["source"].cached
    assert result.artifact("slow", "out").read_json("value.json") == {"value": 20}


def test_printer_rewrites_one_line_on_a_terminal_and_prints_plain_lines_otherwise():
    import io
    from types import SimpleNamespace

    from edgepipe.pipeline.display import ProgressPrinter

    node = SimpleNamespace(name="train")

    def feed(printer):
        printer("start", node, {})
        for kind, step, total, values in (("batch", 5, 10, {"loss": 0.5}), ("epoch", 1, 2, {"loss": 0.25}),
                                          ("epoch", 2, 2, {"loss": 0.125, "val_loss": 0.2})):
            printer("progress", node, {"event": progress.Event("e", "train", kind, step, total, values, 0.0)})
        printer("done", node, {"seconds": 1.5})

    live = io.StringIO()
    feed(ProgressPrinter(1, stream=live, live=True))
    text = live.getvalue()
    assert "\r\x1b[K[ 1/1] train" in text and "epoch 2/2 loss 0.125 val_loss 0.2" in text
    assert text.endswith("\r\x1b[K[ 1/1] train                        done (1.5s)\n")
    plain = io.StringIO()
    feed(ProgressPrinter(1, stream=plain, live=False))
    assert "\x1b" not in plain.getvalue()
    assert plain.getvalue().splitlines() == [
        "[ 1/1] train                        running ...",
        "[ 1/1] train                        batch 5/10 loss 0.5",
        "[ 1/1] train                        epoch 1/2 loss 0.25",
        "[ 1/1] train                        epoch 2/2 loss 0.125 val_loss 0.2",
        "[ 1/1] train                        done (1.5s)"]


@component
def spin(out: Output[Examples], seconds: float = 20.0) -> dict:
    """Runs up to ``seconds`` checking the stop flag; first sends SIGINT to its own (worker) thread, as the kernel
    may deliver a terminal's Ctrl-C to any thread of the process."""
    import signal
    import threading
    import time

    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        progress.check_stop()
        time.sleep(0.01)
    out.write_json("value.json", {"value": 1})
    return {}


def test_ctrl_c_delivered_to_a_worker_thread_still_stops_the_run_promptly(tmp_path, capsys, live_sigint):
    """Python runs signal handlers in the main thread only when it wakes: the runner must not block in wait()
    for the whole component (it did: a Ctrl-C during a 40-epoch training took effect after the training)."""
    import io
    import time

    from edgepipe.pipeline.display import ProgressPrinter, stop_on_ctrl_c

    printer = ProgressPrinter(1, stream=io.StringIO(), live=False)
    runner = LocalRunner(tmp_path, progress=printer)
    started = time.monotonic()
    with pytest.raises(progress.StopRequested), stop_on_ctrl_c(runner, printer):
        runner.run(Pipeline("p", [spin(seconds=20.0)]))
    assert time.monotonic() - started < 5
    assert "stopping after the current step" in capsys.readouterr().err
    assert runner.store.runs()[0]["status"] == "interrupted"
