"""The local runner: caching, downstream invalidation, resume, atomicity, concurrency, kill -9."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.runner import LocalRunner
from tests.pipeline import fixture_components as fx

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def reset_switches():
    fx.SWITCHES["fail"] = set()
    fx.SWITCHES["barrier"] = None
    yield


def chain(value=1, step=1, path=None):
    a = fx.source(value=value, path=path)
    b = fx.increment(examples=a.outputs["out"], step=step)
    c = fx.combine(left=a.outputs["out"], right=b.outputs["out"])
    return Pipeline("chain", [a, b, c])


def executed(result):
    return sorted(name for name, node in result.nodes.items() if not node.cached)


def test_second_run_is_all_cache_hits_and_same_artifacts(tmp_path):
    runner = LocalRunner(tmp_path)
    first = runner.run(chain())
    second = runner.run(chain())
    assert first.status == second.status == "complete"
    assert executed(first) == ["combine", "increment", "source"]
    assert executed(second) == []
    assert second.artifact("combine", "model").read_json("total.json") == {"total": 3}
    assert first.nodes["combine"].outputs["model"].uri == second.nodes["combine"].outputs["model"].uri


def test_changed_parameter_reruns_node_and_downstream_only(tmp_path):
    runner = LocalRunner(tmp_path)
    runner.run(chain(step=1))
    result = runner.run(chain(step=5))
    assert executed(result) == ["combine", "increment"]
    assert result.artifact("combine", "model").read_json("total.json") == {"total": 7}


def test_external_file_content_is_part_of_the_key(tmp_path):
    data = tmp_path / "input.txt"
    data.write_text("one")
    runner = LocalRunner(tmp_path / "root")
    runner.run(chain(path=str(data)))
    assert executed(runner.run(chain(path=str(data)))) == []
    data.write_text("two")
    assert executed(runner.run(chain(path=str(data)))) == ["combine", "increment", "source"]


def test_no_cache_reexecutes_everything(tmp_path):
    LocalRunner(tmp_path).run(chain())
    assert executed(LocalRunner(tmp_path, use_cache=False).run(chain())) == ["combine", "increment", "source"]


def test_failed_component_registers_nothing_and_next_run_resumes(tmp_path):
    runner = LocalRunner(tmp_path)
    fx.SWITCHES["fail"] = {"increment"}
    failed = runner.run(chain())
    assert failed.status == "failed"
    assert "component 'increment' failed at " in str(failed.error)
    assert str(failed.error).endswith("fixture_components.py:29: RuntimeError: increment was told to fail")
    assert "combine" not in failed.nodes
    assert not (tmp_path / "artifacts" / "increment").exists()
    assert not any((tmp_path / "tmp").iterdir())
    kept = list((tmp_path / "failed" / "increment").glob("*/out/value.json"))
    assert len(kept) == 1 and "partial" in kept[0].read_text()  # kept for debugging, not registered
    rows = runner.store._query("SELECT a.* FROM artifacts a JOIN executions e ON a.producer=e.id "
                               "WHERE e.node='increment'")
    assert rows == []

    fx.SWITCHES["fail"] = set()
    resumed = runner.run(chain())
    assert resumed.status == "complete"
    assert executed(resumed) == ["combine", "increment"]
    assert resumed.nodes["source"].cached


def test_deleted_artifact_is_not_a_cache_hit(tmp_path):
    runner = LocalRunner(tmp_path)
    first = runner.run(chain())
    import shutil

    shutil.rmtree(first.nodes["increment"].outputs["out"].uri)
    assert executed(runner.run(chain())) == ["increment"]


def test_independent_nodes_run_concurrently(tmp_path):
    fx.SWITCHES["barrier"] = threading.Barrier(2, timeout=20)
    a = fx.source()
    left = fx.increment(examples=a.outputs["out"]).named("left")
    right = fx.increment(examples=a.outputs["out"], step=2).named("right")
    both = fx.combine(left=left.outputs["out"], right=right.outputs["out"])
    result = LocalRunner(tmp_path, max_workers=2).run(Pipeline("diamond", [a, left, right, both]))
    assert result.status == "complete", result.error
    assert result.artifact("combine", "model").read_json("total.json") == {"total": 5}


def test_lineage_walks_back_to_the_source(tmp_path):
    runner = LocalRunner(tmp_path)
    result = runner.run(chain())
    lineage = runner.store.lineage(result.nodes["combine"].outputs["model"].id)
    assert sorted(a["name"] for a in lineage) == ["model", "out", "out"]


KILL_SCRIPT = """
import sys
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.runner import LocalRunner
from tests.pipeline import fixture_components as fx
a = fx.source(value=2)
s = fx.slow(examples=a.outputs["out"], marker=sys.argv[2])
LocalRunner(sys.argv[1]).run(Pipeline("killme", [a, s]))
"""


def test_kill_9_mid_component_leaves_nothing_reusable_and_resumes(tmp_path):
    root, marker = tmp_path / "root", tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(root), str(marker)], cwd=REPO)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "component never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any((root / "tmp").iterdir()), "the killed component should have left its staging folder"

    runner = LocalRunner(root)
    os.environ["EDGEPIPE_TEST_NO_SLEEP"] = "1"
    try:
        a = fx.source(value=2)
        s = fx.slow(examples=a.outputs["out"], marker=str(marker))
        result = runner.run(Pipeline("killme", [a, s]))
    finally:
        del os.environ["EDGEPIPE_TEST_NO_SLEEP"]
    assert result.nodes["source"].cached and not result.nodes["slow"].cached
    assert result.artifact("slow", "out").read_json("value.json") == {"value": 20}
    statuses = {r["status"] for r in runner.store.runs()}
    assert statuses == {"abandoned", "complete"}
    assert [p.name for p in (root / "tmp").iterdir()] == []


def test_optional_input_may_stay_unconnected(tmp_path):
    a = fx.source(value=3)
    alone = fx.maybe_add(base=a.outputs["out"])
    assert LocalRunner(tmp_path).run(Pipeline("p", [a, alone])).artifact("maybe_add", "out").read_json(
        "value.json") == {"value": 3}
    b = fx.source(value=4).named("other")
    both = fx.maybe_add(base=a.outputs["out"], extra=b.outputs["out"])
    assert LocalRunner(tmp_path).run(Pipeline("p", [a, b, both])).artifact("maybe_add", "out").read_json(
        "value.json") == {"value": 7}
