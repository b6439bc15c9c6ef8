"""A component that fails, returns the wrong thing or leaves an Output empty: one line naming the component, what
went wrong and where (file:line), recorded the same in the store; nothing of it registered or cached."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.component import Output, component
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.errors import ComponentError, DataError, describe
from edgepipe.pipeline.runner import LocalRunner

REPO = Path(__file__).resolve().parents[2]
RETURNED: dict[str, object] = {"value": None}


@component
def writes(out: Output[Examples]) -> dict:
    out.write_json("value.json", {"value": 1})
    return RETURNED["value"]  # type: ignore[return-value]


@component
def writes_nothing(out: Output[Examples]) -> dict:
    return {}


@component
def sets_properties_only(out: Output[Examples]) -> dict:
    out.properties["splits"] = []  # an empty result, said in properties: written
    return {}


@component
def bad_data(out: Output[Examples]) -> dict:
    raise DataError("rows.csv:7: value out of float32 range")


def _run(tmp_path: Path, node) -> tuple[LocalRunner, object]:
    runner = LocalRunner(tmp_path / "root")
    return runner, runner.run(Pipeline("p", [node]))


def _recorded_error(runner: LocalRunner, run_id: str) -> str:
    (execution,) = runner.store.executions(run_id)
    return execution["error"]


# ---- F1: an exception in a component's own code ---------------------------------------------------------------------
def _user_module(tmp_path: Path) -> Path:
    """A component in a project of the user's (outside edgepipe and site-packages), raising two calls deep."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "myfeatures.py").write_text(textwrap.dedent("""\
        from edgepipe.pipeline.artifacts import Examples
        from edgepipe.pipeline.component import Output, component


        def lookup(columns):
            return columns["temperatur"]


        @component
        def clip_temperature(clipped: Output[Examples]) -> dict:
            return {"n": len(lookup({"temperature": [1, 2]}))}
        """))
    return project


def test_an_exception_names_its_type_and_the_line_of_the_users_code(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_user_module(tmp_path)))
    from myfeatures import clip_temperature

    runner, result = _run(tmp_path, clip_temperature())
    where = f"{tmp_path / 'proj' / 'myfeatures.py'}:6"
    assert str(result.error) == f"component 'clip_temperature' failed at {where}: KeyError: 'temperatur'"
    assert result.error.exit_code == 1
    assert _recorded_error(runner, result.run_id) == str(result.error)  # what `edgepipe show` prints
    assert runner.store.run(result.run_id)["error"] == str(result.error)


def test_an_exception_inside_a_library_names_the_users_line_that_called_it(tmp_path):
    @component
    def parses(out: Output[Examples]) -> dict:
        json.loads("{not json")  # the JSONDecodeError is raised in the standard library
        return {}

    _, result = _run(tmp_path, parses())
    line = parses.fn.__code__.co_firstlineno + 2
    assert str(result.error).startswith(f"component 'parses' failed at {__file__}:{line}: JSONDecodeError: ")


def test_an_edgepipe_error_keeps_its_own_line_and_exit_code(tmp_path):
    runner, result = _run(tmp_path, bad_data())
    assert str(result.error) == "component 'bad_data' failed: rows.csv:7: value out of float32 range"
    assert result.error.exit_code == 3
    assert _recorded_error(runner, result.run_id) == str(result.error)


def test_a_tensorflow_graph_error_keeps_the_line_that_says_what_went_wrong():
    message = ("Graph execution error:\n\nDetected at node Cast defined at (most recent call last):\n"
               '  File "/usr/lib/python3.11/threading.py", line 1002, in _bootstrap\n\n'
               '  File "/x/site-packages/tf_keras/src/engine/training.py", line 1804, in fit\n\n'
               "Cast string to float is not supported\n\t [[{{node Cast}}]]\n\t [[IteratorGetNext]] "
               "[Op:__inference_train_function_1285]")
    assert describe(RuntimeError(message)) == ("Graph execution error: Cast string to float is not supported "
                                               "(node Cast)")
    assert describe(RuntimeError("first line\nsecond line")) == "first line"  # not a heading: as before


# ---- F2: what a component returns -----------------------------------------------------------------------------------
@pytest.mark.parametrize("returned", [7, 0, "", [], ("a", 1)])
def test_a_return_value_that_is_not_a_dict_fails_naming_its_type(tmp_path, returned):
    RETURNED["value"] = returned
    try:
        runner, result = _run(tmp_path, writes())
    finally:
        RETURNED["value"] = None
    assert result.status == "failed"
    where = f"{__file__}:{writes.fn.__code__.co_firstlineno}"
    assert str(result.error) == (f"component 'writes' failed at {where}: returned {type(returned).__name__}, not a "
                                 "dict of metrics (return {'name': value, ...} or None)")
    assert not (tmp_path / "root" / "artifacts").exists()


def test_numpy_metrics_are_stored_as_numbers_and_lists(tmp_path):
    RETURNED["value"] = {"count": np.int64(10), "loss": np.float32(0.5), "per_class": np.array([0.25, 0.75]),
                         "nested": {"f1": np.float64(0.5)}, "variant": "int8_ptq", "ok": np.bool_(True)}
    try:
        runner, result = _run(tmp_path, writes())
    finally:
        RETURNED["value"] = None
    assert result.status == "complete"
    (execution,) = runner.store.executions(result.run_id)
    assert json.loads(execution["metrics"]) == {"count": 10, "loss": 0.5, "per_class": [0.25, 0.75],
                                                "nested": {"f1": 0.5}, "variant": "int8_ptq", "ok": True}


@pytest.mark.parametrize("value, refusal", [
    (object(), "metric 'obj' is of type object; metrics are numbers"),
    (np.zeros(5000), "metric 'obj' is an array of 5000 values; a metric holds at most 1000"),
    ({"inner": Path("/x")}, "metric 'obj.inner' is of type PosixPath"),
])
def test_a_metric_only_a_repr_could_store_is_refused_naming_its_key(tmp_path, value, refusal):
    RETURNED["value"] = {"n": 1, "obj": value}
    try:
        _, result = _run(tmp_path, writes())
    finally:
        RETURNED["value"] = None
    assert result.status == "failed" and refusal in str(result.error), str(result.error)


# ---- F3: an Output never written ------------------------------------------------------------------------------------
def test_an_output_never_written_fails_the_component_and_is_not_registered(tmp_path):
    runner, result = _run(tmp_path, writes_nothing())
    where = f"{__file__}:{writes_nothing.fn.__code__.co_firstlineno}"
    assert str(result.error) == (f"component 'writes_nothing' failed at {where}: output 'out' was never written "
                                 "(no file in it and no properties set)")
    assert runner.store._query("SELECT * FROM artifacts") == []
    again = runner.run(Pipeline("p", [writes_nothing()]))
    assert again.status == "failed"  # not a cache hit the second time


def test_an_output_with_properties_only_counts_as_written(tmp_path):
    _, result = _run(tmp_path, sets_properties_only())
    assert result.status == "complete"


# ---- N1: create_pipeline returning something else -------------------------------------------------------------------
def test_create_pipeline_returning_a_list_names_its_file_and_line(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pipe.py").write_text("X = 1\n\n\ndef create_pipeline(config):\n    return []\n")
    result = subprocess.run([sys.executable, "-m", "edgepipe", "run", str(project / "pipe.py"), "--root",
                             str(tmp_path / "root"), "--output", str(tmp_path / "out")], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"edgepipe: error: pipe:create_pipeline failed at {project / 'pipe.py'}:4: "
                                     "returned list, not a Pipeline (return Pipeline(name, [nodes...]))")


def test_component_error_without_a_traceback_names_no_place():
    assert str(ComponentError("n", ValueError("bad"))) == "component 'n' failed: ValueError: bad"
