"""DAG validation happens when the pipeline is built: cycles, missing inputs, type mismatches, bad parameters."""
import pytest

from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.errors import PipelineDefinitionError
from tests.pipeline.fixture_components import combine, consume_model, increment, source


def test_topological_order_follows_inputs():
    a = source(value=1)
    b = increment(examples=a.outputs["out"])
    c = combine(left=a.outputs["out"], right=b.outputs["out"])
    pipe = Pipeline("p", [c, b, a])
    assert [n.name for n in pipe.nodes] == ["source", "increment", "combine"]


def test_cycle_is_rejected_with_its_path():
    a = source()
    b = increment(examples=a.outputs["out"])
    c = increment(examples=b.outputs["out"]).named("again")
    b.connect("examples", c.outputs["out"])
    with pytest.raises(PipelineDefinitionError, match="cycle: .*increment.*again|cycle: .*again.*increment"):
        Pipeline("p", [a, b, c])


def test_input_from_node_outside_pipeline_is_rejected():
    a = source()
    b = increment(examples=a.outputs["out"])
    with pytest.raises(PipelineDefinitionError, match="comes from node 'source', which is not in pipeline"):
        Pipeline("p", [b])


def test_unconnected_input_is_rejected():
    a = source()
    c = combine(left=a.outputs["out"])
    with pytest.raises(PipelineDefinitionError, match="input 'right' \\(Examples\\) is not connected"):
        Pipeline("p", [a, c])


def test_type_mismatch_is_rejected():
    a = source()
    with pytest.raises(PipelineDefinitionError, match="expects Model but 'source.out' is Examples"):
        Pipeline("p", [a, consume_model(model=a.outputs["out"])])


def test_unknown_and_missing_parameters_are_rejected_at_call():
    with pytest.raises(PipelineDefinitionError, match="has no parameter 'vaule'.*allowed: path, value"):
        source(vaule=3)
    with pytest.raises(PipelineDefinitionError, match="input 'examples' must be an upstream output"):
        increment(examples="not a ref")


def test_duplicate_names_are_rejected():
    a = source()
    with pytest.raises(PipelineDefinitionError, match="two nodes are named 'increment'"):
        Pipeline("p", [a, increment(examples=a.outputs["out"]), increment(examples=a.outputs["out"])])
