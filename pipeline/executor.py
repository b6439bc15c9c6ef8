"""Invoking one component on artifact directories: the part every runner shares.

The local runner calls this with a staging folder it later renames into its store; a Kubeflow/Vertex task calls it
(through ``edgepipe execute-node``) with the local paths the orchestrator mounted for the task's artifacts. Either
way the component sees the same thing: opened input artifacts, fresh output artifacts, and its parameters, and
(through :mod:`edgepipe.pipeline.progress`) an execution context to report progress to, to check for a requested
stop, and whose cache key names resumable state such as training checkpoints.

What a component must hand back is checked here, once for every runner: a dict of metrics or None, and something
in every declared Output. A wrong return value or an empty Output fails the component itself, naming it; left to
the store or a downstream node it would surface later as an unrelated error, or be cached as a complete result.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from edgepipe.pipeline import progress
from edgepipe.pipeline.artifacts import ARTIFACT_META, Artifact
from edgepipe.pipeline.cache import cache_key
from edgepipe.pipeline.component import Component
from edgepipe.pipeline.errors import ContractError, defined_at

MAX_METRIC_VALUES = 1000  # numbers in one metric (a per-class list, a small curve); more belongs in an Output


def invoke(component: Component, inputs: Mapping[str, Artifact], output_dirs: Mapping[str, str | Path],
           params: Mapping[str, Any], execution: progress.Execution | None = None
           ) -> tuple[dict[str, Artifact], dict[str, Any]]:
    """Run ``component`` and finalize its outputs; returns (output artifacts, metrics).

    ``execution`` is the context the component runs in (the runner passes its execution id, cache key, progress
    sink and stop flag); without one, the cache key is computed from the inputs' content only if the component
    asks for it. Raises whatever the component raised; the caller decides what a failure means for its store.
    """
    missing = set(component.outputs) - set(output_dirs)
    if missing:
        raise ValueError(f"component '{component.name}': no location given for outputs {sorted(missing)}")
    outputs = {name: typ(output_dirs[name]) for name, typ in component.outputs.items()}
    for artifact in outputs.values():
        artifact.path.mkdir(parents=True, exist_ok=True)
    if execution is None:
        execution = progress.Execution(node=component.name, cache_key=lambda: cache_key(
            component, params, {name: a.content_fingerprint() for name, a in inputs.items() if a is not None}))
    with progress.bound(execution):
        returned = component.fn(**inputs, **outputs, **params)
    metrics = metrics_of(component, returned)
    for name, artifact in outputs.items():
        if not artifact.properties and not any(path.name != ARTIFACT_META for path in artifact.files()):
            raise ContractError(f"output '{name}' was never written (no file in it and no properties set)",
                                defined_at(component.fn))
    for artifact in outputs.values():
        artifact.finalize()
    return outputs, metrics


def metrics_of(component: Component, returned: Any) -> dict[str, Any]:
    """The component's return value as the metrics the store records, or :class:`ContractError`.

    What MLflow's ``log_metrics`` and a Kubeflow metrics artifact accept, as JSON: numbers (and strings, bools,
    None, small lists and dicts of them, for a variant name or per-class values). NumPy scalars become the Python
    numbers they hold and small NumPy arrays lists, as MLflow converts them, rather than their ``str()``; a value
    that only a ``repr`` could store (an object, a large array) is refused naming its key, instead of being
    recorded as text that no comparison or chart can use.
    """
    where = defined_at(component.fn)
    if returned is None:
        return {}
    if not isinstance(returned, Mapping):  # 0, "" and [] too: silently {} would hide the mistake
        raise ContractError(f"returned {type(returned).__name__}, not a dict of metrics (return {{'name': value, "
                            "...} or None)", where)
    return {_metric_key(key, where): _metric_value(value, str(key), where) for key, value in returned.items()}


def _metric_key(key: Any, where: str | None) -> str:
    if not isinstance(key, str):
        raise ContractError(f"metric name {key!r} is {type(key).__name__}, not a string", where)
    return key


def _metric_value(value: Any, key: str, where: str | None) -> Any:
    too_many = f"a metric holds at most {MAX_METRIC_VALUES} (write larger results into an Output)"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value.item() if hasattr(value, "item") else value  # np.float64 is a float: stored as one
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # NumPy scalars and arrays
        size = getattr(value, "size", 1)
        if size > MAX_METRIC_VALUES:
            raise ContractError(f"metric '{key}' is an array of {size} values; {too_many}", where)
        value = value.tolist()
        if not isinstance(value, (list, dict)):
            return _metric_value(value, key, where)
    if isinstance(value, Mapping):
        return {_metric_key(k, where): _metric_value(v, f"{key}.{k}", where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_METRIC_VALUES:
            raise ContractError(f"metric '{key}' has {len(value)} values; {too_many}", where)
        return [_metric_value(item, key, where) for item in value]
    raise ContractError(f"metric '{key}' is of type {type(value).__name__}; metrics are numbers, strings, bools "
                        "or small lists/dicts of them", where)
