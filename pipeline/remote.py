"""What runs inside an orchestrator's task container (Kubeflow, Vertex AI): rebuild, resolve, execute one node.

A compiled pipeline does not carry pickled components. Each task names its component by import path
(``module:function``) and gets its parameters as JSON, so the task needs only the project's image. Parameters are
worked out *in the cloud*, by a first ``resolve`` task that rebuilds the pipeline from the config there, because
templates derive parameters from the environment they run in (``builtin:`` sources become paths inside the installed
package, and the compiling laptop's paths mean nothing to a worker). That task writes one JSON spec per node; each
node task receives only its own spec, so the orchestrator's cache key for a node is what the local runner's is: the
node's parameters, its component's code version and its input artifacts. Changing ``evaluate.threshold_margin``
re-runs evaluation, not training.

Nothing here imports kfp: the same functions back ``edgepipe execute-node`` for running one node by hand.
"""
from __future__ import annotations

import copy
import importlib
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Mapping

from edgepipe.pipeline.artifacts import _json_default
from edgepipe.pipeline.component import Component, Node, param_json, param_value
from edgepipe.pipeline.config import Config, validate
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.errors import ComponentError, ConfigError, PipelineDefinitionError
from edgepipe.pipeline.executor import invoke

DEFAULT_FACTORY = "edgepipe.pipeline.templates:build_pipeline"
GCS_FUSE_ROOT = Path("/gcs")  # where Vertex AI mounts Cloud Storage in every task container
# True while a pipeline is built for task containers (compiling, the resolve task): a factory then keeps portable
# references such as ``builtin:digits`` instead of files it would generate on this machine (or in the resolve task's
# container, which the node tasks never see); :func:`execute_spec` materialises them where the node runs.
_FOR_TASKS: ContextVar[bool] = ContextVar("edgepipe_for_tasks", default=False)


def building_for_tasks() -> bool:
    """Whether the pipeline being built will run as task containers (see ``_FOR_TASKS``)."""
    return _FOR_TASKS.get()


@contextmanager
def _for_tasks():
    token = _FOR_TASKS.set(True)
    try:
        yield
    finally:
        _FOR_TASKS.reset(token)


# ---- naming things by import path -----------------------------------------------------------------------------------
def import_ref(ref: str) -> Any:
    """Import ``package.module:attribute``; a wrong reference is a one-line ConfigError."""
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"'{ref}' is not a 'module:attribute' reference")
    try:
        target = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"cannot import '{ref}': {err}") from None
    return target


def component_ref(node: Node) -> str:
    """The import path of a node's component; refused when a task could not import it (``__main__``, closures)."""
    component = node.component
    ref = f"{component.fn.__module__}:{component.fn.__qualname__}"
    if component.fn.__module__ == "__main__" or "<locals>" in ref:
        raise PipelineDefinitionError(f"node '{node.name}': component '{component.name}' is defined in {ref}, which "
                                      "a task container cannot import; define it at module level in a package")
    try:
        found = import_ref(ref)
    except ConfigError:
        found = None
    if not isinstance(found, Component) or found.fn is not component.fn:
        raise PipelineDefinitionError(f"node '{node.name}': '{ref}' does not import as component '{component.name}' "
                                      "(decorate a module-level function with @component)")
    return ref


def build_from_config(config: Config, factory: str = DEFAULT_FACTORY, *, for_tasks: bool = False) -> Pipeline:
    """The pipeline a ``module:function`` factory (Config -> Pipeline) makes; the default is the template registry.
    ``for_tasks``: built to run as task containers (see :func:`building_for_tasks`)."""
    build: Callable[[Config], Pipeline] = import_ref(factory)
    if for_tasks:
        with _for_tasks():
            pipeline = build(config)
    else:
        pipeline = build(config)
    if not isinstance(pipeline, Pipeline):
        raise ConfigError(f"pipeline factory '{factory}' returned {type(pipeline).__name__}, not a Pipeline")
    return pipeline


# ---- the shape of a DAG and the spec of one node -------------------------------------------------------------------
def pipeline_shape(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    """Nodes, components and edges: what must not change between compiling and running in the cloud."""
    return {node.name: {"component": component_ref(node),
                        "inputs": {k: f"{ref.node.name}.{ref.name}" for k, ref in sorted(node.inputs.items())}}
            for node in pipeline.nodes}


def node_spec(node: Node) -> dict[str, Any]:
    """Everything a task needs to run one node: component, code version and JSON parameters."""
    params = {name: param_json(value) for name, value in node.component.resolved_params(node).items()}
    for name, value in params.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise PipelineDefinitionError(f"node '{node.name}': parameter '{name}' = {value!r} is not JSON; a task "
                                          "in another process cannot receive it") from None
    return {"node": node.name, "component": component_ref(node), "code_version": node.component.code_version,
            "params": params}


def encode_spec(spec: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys): equal specs give equal strings, so the orchestrator's cache can match them."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


# ---- the resolve task -----------------------------------------------------------------------------------------------
def resolve_node_specs(factory: str, base_config_json: str, overrides: Mapping[str, Any],
                       expected_shape_json: str, spec_paths: Mapping[str, str]) -> dict[str, str]:
    """Rebuild the pipeline from the base config plus run-time parameter values; write each node's spec.

    ``overrides`` maps dotted config keys to the values the run was given. The rebuilt DAG must have the compiled
    shape: a parameter that adds or removes nodes (``prune.enabled``) needs a recompile, and saying so here beats a
    task failing later with a missing input. The run's values get the compile-time checks too: a relative or
    ``file://`` path (an absolute one may be a volume mounted here) and ``pipeline.beam_args``.
    """
    raw = json.loads(base_config_json)
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        raw.setdefault(section, {})[key] = copy.deepcopy(value)
    config = validate(raw, source="pipeline parameters", dumped=True)
    pipeline = build_from_config(config, factory, for_tasks=True)
    expected, actual = json.loads(expected_shape_json), pipeline_shape(pipeline)
    if actual != expected:
        changed = sorted(set(expected) ^ set(actual)) or sorted(n for n in expected if expected[n] != actual[n])
        raise PipelineDefinitionError(
            f"the run's parameters change the pipeline's shape (nodes {', '.join(changed)}) from what was compiled; "
            "recompile with those values instead of passing them at submission")
    # the compile-time checks, now on the run's values: one line here beats a node task failing later
    from edgepipe.pipeline.beam_options import validate_beam_args
    from edgepipe.pipeline.kfp_compiler import check_portable

    check_portable(pipeline, config, on_worker=True)
    validate_beam_args(config.pipeline.beam_args)
    specs = {}
    for node in pipeline.nodes:
        specs[node.name] = encode_spec(node_spec(node))
        if node.name in spec_paths:
            target = Path(spec_paths[node.name])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(specs[node.name])
    return specs


# ---- a node task ----------------------------------------------------------------------------------------------------
def execute_spec(spec: Mapping[str, Any], input_paths: Mapping[str, str], output_paths: Mapping[str, str]):
    """Open the inputs, invoke the component on the output locations, return (output artifacts, metrics)."""
    component: Component = import_ref(spec["component"])
    if component.code_version != spec["code_version"]:
        raise PipelineDefinitionError(
            f"node '{spec['node']}': component code here ({component.code_version}) differs from the code its "
            f"parameters were resolved with ({spec['code_version']}); all tasks must run the same image")
    node = spec["node"]
    optional = set(getattr(component, "optional_inputs", ()))  # ``Input[T] | None`` left unconnected -> None
    for kind, given, declared, may_skip in (("input", input_paths, component.inputs, optional),
                                            ("output", output_paths, component.outputs, set())):
        if not set(declared) - may_skip <= set(given) <= set(declared):
            raise ConfigError(f"node '{node}': {kind}s given {sorted(given)} but component '{component.name}' "
                              f"declares {sorted(declared)}")
    inputs = {name: component.inputs[name].open(path) for name, path in input_paths.items()}
    inputs.update({name: None for name in optional - set(input_paths)})
    params = {name: _task_path(value) if name in component.path_params else param_value(value)
              for name, value in spec["params"].items()}
    scratch = None if is_chief() else tempfile.mkdtemp(prefix="edgepipe-replica-")
    if scratch:  # every replica of a multi-worker job runs the node; only the chief publishes its outputs
        print(f"node '{node}': not the chief replica (TF_CONFIG); outputs go to a scratch folder", flush=True)
        output_paths = {name: str(Path(scratch) / name) for name in output_paths}
    try:
        return invoke(component, inputs, output_paths, params)
    except Exception as err:  # named like the local runner's failures: which node, then the cause's first line
        raise ComponentError(node, err) from err
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def is_chief() -> bool:
    """False only for a non-chief replica of a multi-worker job (Vertex AI sets TF_CONFIG with chief/worker)."""
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        task, cluster = tf_config.get("task") or {}, tf_config.get("cluster") or {}
        kind, index = task.get("type"), int(task.get("index", 0))
    except (ValueError, TypeError, AttributeError):
        return True
    if kind is None or kind in ("chief", "master"):
        return True
    return kind == "worker" and index == 0 and not ({"chief", "master"} & set(cluster))


def run_task(spec_json: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Body of every generated KFP node component: ``inputs``/``outputs`` are ``kfp.dsl.Artifact`` objects.

    The component writes into the local path the orchestrator gives each output (on Vertex AI a Cloud Storage FUSE
    path under the pipeline root); the edgepipe type and the returned metrics go into the artifact's metadata, which
    the Vertex/Kubeflow UI shows.
    """
    spec = json.loads(spec_json)
    artifacts, metrics = execute_spec(spec, {k: a.path for k, a in inputs.items()},
                                      {k: a.path for k, a in outputs.items()})
    safe_metrics = json_safe(metrics)
    for name, artifact in outputs.items():
        artifact.metadata.update({"edgepipe_type": artifacts[name].type_name, "edgepipe_node": spec["node"],
                                  "metrics": safe_metrics})
    print(json.dumps({"node": spec["node"], "metrics": safe_metrics}, sort_keys=True), flush=True)
    return metrics


def _task_path(value: Any) -> Any:
    """A file parameter as the task opens it: ``gs://bucket/x`` -> ``/gcs/bucket/x`` where Vertex AI mounts buckets
    (components open local files); ``builtin:<name>`` of :mod:`edgepipe.data.synthetic` -> that dataset generated
    here (deterministic, so every task that needs it makes the same bytes) under the temp folder."""
    if isinstance(value, list):
        return [_task_path(v) for v in value]
    if isinstance(value, str) and value.startswith("gs://") and GCS_FUSE_ROOT.is_dir():
        return str(GCS_FUSE_ROOT / value[len("gs://"):])
    if isinstance(value, str) and value.startswith("builtin:"):
        from edgepipe.data import synthetic

        name = value.split(":", 1)[1]
        if name in synthetic.DATASETS:
            return str(synthetic.ensure(name, Path(tempfile.gettempdir()) / "edgepipe-datasets"))
    return value


def json_safe(value: Any) -> Any:
    """Metrics as plain JSON (NumPy scalars converted, NaN/inf as strings): artifact metadata is a protobuf Struct."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        return json_safe(_json_default(value))
    except TypeError:
        return str(value)
