"""Pipeline factories (Config -> Pipeline) over the tiny fixture components, for compiling and kfp.local runs.

They read real config keys so the compiled pipeline's parameters, the resolve task and the shape check are
exercised as with the default template, without TensorFlow: ``training.epochs`` is the source value,
``window.stride`` the increment, ``data.source`` the external file, and ``prune.enabled`` adds a node.
"""
from __future__ import annotations

from edgepipe import data
from edgepipe.pipeline.artifacts import Artifact
from edgepipe.pipeline.component import Output, component
from edgepipe.pipeline.config import Config
from edgepipe.pipeline.dag import Pipeline
from tests.pipeline import fixture_components as fx


def source_path(source: str) -> str:
    """Like the anomaly template: ``builtin:`` names a file inside the installed package (a small one here)."""
    return str(data.default_anomalies_path()) if source.startswith("builtin:") else source


def chain(config: Config) -> Pipeline:
    a = fx.source(value=config.training.epochs, path=source_path(config.data.source))
    b = fx.increment(examples=a.outputs["out"], step=config.window.stride)
    nodes, last = [a, b], b
    if config.prune.enabled:
        last = fx.increment(examples=b.outputs["out"], step=config.window.size).named("increment_more")
        nodes.append(last)
    passed_on = fx.maybe_add(base=last.outputs["out"])  # optional input 'extra' left unconnected
    total = fx.combine(left=a.outputs["out"], right=passed_on.outputs["out"])
    seen = fx.consume_model(model=total.outputs["model"])
    return Pipeline(config.pipeline.name, [*nodes, passed_on, total, seen])


def closure(config: Config) -> Pipeline:
    """A component defined inside a function: fine locally, impossible to import in a task container."""
    @component
    def scratch(out: Output[Artifact]) -> dict:
        return {}

    return Pipeline("closure", [scratch()])


def exploding(config: Config) -> Pipeline:
    """A factory that must never be called (proves a command failed before building anything)."""
    raise AssertionError("the pipeline was built")
