"""A pydantic section as a component parameter (the ``evaluate`` component's ``settings``): fingerprinted by its
class and sorted fields, recorded, sent to a compiled task as JSON and rebuilt there (``pipeline/component.py``)."""
from __future__ import annotations

import json

import pytest

from edgepipe import tasks
from edgepipe.components.evaluation import evaluate
from edgepipe.pipeline.cache import cache_key
from edgepipe.pipeline.component import param_json, param_value
from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.errors import ConfigError, PipelineDefinitionError
from edgepipe.pipeline.remote import encode_spec, node_spec
from edgepipe.pipeline.templates import build_pipeline


def _key(settings) -> str:
    return cache_key(evaluate, {"task": "anomaly", "settings": settings, "seed": 0}, {"model": "m"})


def test_the_cache_key_is_the_sections_class_and_values_not_the_order_they_were_set_in():
    section = tasks.get("anomaly").evaluate
    a = section(threshold_quantile=0.99, latency_runs=3)
    b = section(latency_runs=3, threshold_quantile=0.99)
    assert _key(a) == _key(b)
    assert _key(a) != _key(section(threshold_quantile=0.98, latency_runs=3))
    same_values = {"latency_runs": 3, "tolerance": 1e-3, "split": "test"}  # two tasks' sections, equal fields
    assert _key(tasks.get("forecasting").evaluate(**same_values)) != _key(
        tasks.get("control").evaluate(latency_runs=3, tolerance=1e-3))


def test_a_section_round_trips_through_a_compiled_tasks_json_spec():
    node = next(n for n in build_pipeline(load_config("cgan", ["evaluate.samples=64"])).nodes
                if n.component.name == "evaluate")
    spec = json.loads(encode_spec(node_spec(node)))  # what the resolve task writes for the node's container
    sent = spec["params"]["settings"]
    assert sent["$section"] == "edgepipe.tasks.generation:GenerationEvaluate" and sent["values"]["samples"] == 64
    rebuilt = param_value(sent)
    assert type(rebuilt) is type(node.params["settings"]) and rebuilt == node.params["settings"]
    assert param_json(rebuilt) == sent


def test_a_spec_naming_no_section_class_is_refused():
    with pytest.raises(PipelineDefinitionError, match="cannot be imported"):
        param_value({"$section": "edgepipe.tasks.anomaly:Nope", "values": {}})
    with pytest.raises(PipelineDefinitionError, match="not a pydantic model"):
        param_value({"$section": "edgepipe.tasks.anomaly:series_bundle", "values": {}})


def test_evaluate_refuses_another_tasks_section():
    with pytest.raises(ConfigError, match=r"task 'anomaly' reads the evaluate section AnomalyEvaluate .*got "
                                          r"ControlEvaluate"):
        evaluate.fn(model=None, evaluation=None, task="anomaly", settings=tasks.get("control").evaluate())
