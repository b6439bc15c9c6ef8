"""Invoking one component on artifact directories: the part every runner shares.

The local runner calls this with a staging folder it later renames into its store; a Kubeflow/Vertex task calls it
(through ``edgepipe execute-node``) with the local paths the orchestrator mounted for the task's artifacts. Either
way the component sees the same thing: opened input artifacts, fresh output artifacts, and its parameters, and
(through :mod:`edgepipe.pipeline.progress`) an execution context to report progress to, to check for a requested
stop, and whose cache key names resumable state such as training checkpoints.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from edgepipe.pipeline import progress
from edgepipe.pipeline.artifacts import Artifact
from edgepipe.pipeline.cache import cache_key
from edgepipe.pipeline.component import Component


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
        metrics = component.fn(**inputs, **outputs, **params) or {}
    for artifact in outputs.values():
        artifact.finalize()
    return outputs, dict(metrics)
