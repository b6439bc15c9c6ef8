"""Invoking one component on artifact directories: the part every runner shares.

The local runner calls this with a staging folder it later renames into its store; a Kubeflow/Vertex task calls it
(through ``edgepipe execute-node``) with the local paths the orchestrator mounted for the task's artifacts. Either
way the component sees the same thing: opened input artifacts, fresh output artifacts, and its parameters.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from edgepipe.pipeline.artifacts import Artifact
from edgepipe.pipeline.component import Component


def invoke(component: Component, inputs: Mapping[str, Artifact], output_dirs: Mapping[str, str | Path],
           params: Mapping[str, Any]) -> tuple[dict[str, Artifact], dict[str, Any]]:
    """Run ``component`` and finalize its outputs; returns (output artifacts, metrics).

    Raises whatever the component raised; the caller decides what a failure means for its store.
    """
    missing = set(component.outputs) - set(output_dirs)
    if missing:
        raise ValueError(f"component '{component.name}': no location given for outputs {sorted(missing)}")
    outputs = {name: typ(output_dirs[name]) for name, typ in component.outputs.items()}
    for artifact in outputs.values():
        artifact.path.mkdir(parents=True, exist_ok=True)
    metrics = component.fn(**inputs, **outputs, **params) or {}
    for artifact in outputs.values():
        artifact.finalize()
    return outputs, dict(metrics)
