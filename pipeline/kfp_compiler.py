"""Compiling a pipeline into a Kubeflow Pipelines v2 spec: the one YAML that both Kubeflow and Vertex AI run.

The compiled DAG has a ``resolve`` task followed by one task per node, all running the project's image:

* **pipeline inputs** are the config's values (``training_epochs``, ``data_source`` ...), with the compiled config
  as defaults, so a run can be re-parameterized from the Vertex/Kubeflow UI or ``parameter_values`` without
  recompiling. Keys that only concern the local runner (``pipeline.root``, ``max_workers``) or that name the
  pipeline are left out, as are keys whose value is or holds a null (KFP has no typed null).
* **resolve** (uncached: it is cheap, and it reads the component code versions of the image actually running)
  rebuilds the pipeline from those values in the cloud and hands each node its JSON spec (see ``remote.py``).
* **node tasks** are lightweight Python components generated from the node's signature: ``Input[...]`` and
  ``Output[...]`` become KFP artifacts (URIs under the pipeline root; the task sees local paths, which Vertex
  backs with Cloud Storage FUSE), the body calls :func:`edgepipe.pipeline.remote.run_task`, and caching is on.
  Lightweight components rather than container components because ``kfp.local.SubprocessRunner`` runs only
  those, and this is how the same YAML is executed end to end in the tests.

Before anything is generated, parameters that name files (``InputPath``) are checked: a local or relative path
would compile fine and fail in the cloud minutes later, so it is refused here with the node and parameter named.
"""
from __future__ import annotations

import glob
import keyword
import linecache
import os
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgepipe.pipeline import artifacts as art
from edgepipe.pipeline.config import Config
from edgepipe.pipeline.component import Node
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.remote import DEFAULT_FACTORY, build_from_config, encode_spec, pipeline_shape

DEFAULT_IMAGE = "edgepipe:latest"
# Config keys that are not pipeline inputs: local-runner settings and the pipeline's identity.
NOT_PARAMETERS = frozenset({"pipeline.name", "pipeline.template", "pipeline.root", "pipeline.max_workers"})
_KFP_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}
_RESOLVE = "edgepipe_resolve"
_SPEC_INPUT = "edgepipe_node_spec"


@dataclass
class CompiledPipeline:
    """What was written: where, under which name, with which pipeline inputs and tasks."""

    path: Path
    name: str
    image: str
    parameters: dict[str, Any] = field(default_factory=dict)  # pipeline input -> default
    tasks: dict[str, str] = field(default_factory=dict)  # node name -> generated component function


def default_image() -> str:
    return os.environ.get("EDGEPIPE_IMAGE", DEFAULT_IMAGE)


def require_kfp():
    """kfp is an extra (``edgepipe[cloud]``); without it compiling fails with one line, not a traceback."""
    try:
        import kfp  # noqa: F401
        from kfp import compiler, dsl
    except ImportError:
        from edgepipe.pipeline.cloud import CloudError

        raise CloudError("compiling for Kubeflow/Vertex needs the kfp SDK: pip install 'edgepipe[cloud]'") from None
    return compiler, dsl


def compile_pipeline(config: Config, output: str | Path, *, image: str | None = None,
                     factory: str = DEFAULT_FACTORY, pipeline_root: str | None = None) -> CompiledPipeline:
    """Build the pipeline from ``config`` with ``factory``, check it can run remotely, write the KFP YAML."""
    compiler, dsl = require_kfp()
    from edgepipe.pipeline.beam_options import validate_beam_args

    image = image or default_image()
    validate_beam_args(config.pipeline.beam_args)
    pipeline = build_from_config(config, factory, for_tasks=True)
    check_portable(pipeline, config)
    compiled = CompiledPipeline(Path(output), kfp_name(config.pipeline.name), image)
    source = generate_source(pipeline, config, factory, compiled)
    namespace, filename = _load_source(source, compiled.name)
    try:
        _compile(compiler, dsl, namespace, compiled, pipeline, pipeline_root)
    finally:
        linecache.cache.pop(filename, None)
    return compiled


def _compile(compiler, dsl, namespace: dict[str, Any], compiled: CompiledPipeline, pipeline: Pipeline,
             pipeline_root: str | None) -> None:
    for function in [_RESOLVE, *compiled.tasks.values()]:
        namespace[f"{function}_op"] = dsl.component(namespace[function], base_image=compiled.image,
                                                       install_kfp_package=False)
    description = f"edgepipe pipeline '{pipeline.name}' ({len(pipeline.nodes)} components)"
    pipeline_fn = dsl.pipeline(name=compiled.name, description=description,
                               pipeline_root=pipeline_root)(namespace["edgepipe_pipeline"])
    compiled.path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=pipeline_fn, package_path=str(compiled.path))


# ---- portability checks ---------------------------------------------------------------------------------------------
def check_portable(pipeline: Pipeline, config: Config | None = None, *, on_worker: bool = False) -> None:
    """Refuse file parameters a cloud worker cannot see, and components a task container cannot import.
    ``on_worker``: checked in the resolve task, on the run's parameter values (see :func:`local_path_problem`)."""
    pipeline_shape(pipeline)  # raises for components that are not importable by module path
    for node in pipeline.nodes:
        params = node.component.resolved_params(node)
        for name in sorted(node.component.path_params):
            values = params.get(name)
            for value in values if isinstance(values, list) else [values]:
                problem = local_path_problem(value, on_worker=on_worker)
                if problem:
                    key = config_key_of(config, name, value) if config is not None else None
                    hint = ((f" (the run parameter {key.replace('.', '_')})" if on_worker
                             else f" (e.g. --set {key}=gs://...)") if key else "")
                    raise ConfigError(
                        f"node '{node.name}': parameter '{name}' is {problem} '{value}', which a cloud worker "
                        f"cannot read; copy it to a bucket and pass gs://BUCKET/...{hint}")


def config_key_of(config: Config, name: str, value: Any) -> str | None:
    """The dotted config key a node parameter's ``value`` came from, so the hint names what the user sets.

    Factories pass config values into parameters without recording where they came from, so the key is found by
    value: among the keys holding it (or a list holding it), the one named like the parameter, else the first.
    None when no key holds it (a factory's own constant): then no key is suggested rather than a wrong one.
    """
    holding = [dotted for dotted, held in _flat_config(config)
               if held == value or (isinstance(held, list) and value in held)]
    named = [dotted for dotted in holding if dotted.rsplit(".", 1)[-1] == name]
    return (named or holding or [None])[0]


def _flat_config(config: Config) -> list[tuple[str, Any]]:
    return [(f"{section}.{key}", value) for section, values in config.model_dump(mode="json").items()
            if isinstance(values, dict) for key, value in values.items()]


def local_path_problem(value: Any, *, on_worker: bool = False) -> str | None:
    """Why ``value`` names a file only this machine has ('a relative path', 'the local path'), or None.
    ``on_worker``: asked in a task container, where an absolute path that exists is a mounted volume, not the
    compiling machine's file; relative and ``file://`` paths are refused there as here."""
    if not isinstance(value, str) or not value or value.startswith("builtin:"):
        return None
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://", value)
    if scheme:
        return "the local file URL" if scheme.group(1).lower() == "file" else None
    path = Path(value).expanduser()
    if not path.is_absolute():
        return "a relative path"
    if on_worker:
        return None
    if path.parts[:2] == ("/", "gcs") or _inside_package(path):
        return None  # Vertex's Cloud Storage mount; files shipped in the edgepipe package (rebuilt in the image)
    if path.exists() or glob.glob(str(path), recursive=True):
        return "the local path"
    return None  # absolute and not here: may be a volume mounted in the workers


def _inside_package(path: Path) -> bool:
    import sys

    resolved = path.resolve()
    roots = {Path(p).resolve() for name, module in list(sys.modules.items())
             if name == "edgepipe" or name.startswith("edgepipe.") for p in getattr(module, "__path__", [])}
    return any(resolved.is_relative_to(root) for root in roots)


# ---- names ----------------------------------------------------------------------------------------------------------
def kfp_name(name: str) -> str:
    """Vertex AI accepts ``[a-z0-9][a-z0-9-]{0,127}`` as a pipeline name."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return f"edgepipe-{slug}"[:128].rstrip("-") if slug else "edgepipe"


def _identifier(name: str, taken: set[str]) -> str:
    base = re.sub(r"\W+", "_", name).strip("_") or "node"
    if base[0].isdigit() or keyword.iskeyword(base):
        base = f"n_{base}"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


def config_parameters(config: Config) -> dict[str, tuple[str, Any]]:
    """Pipeline input name -> (dotted config key, default) for every surfaced config value."""
    surfaced: dict[str, tuple[str, Any]] = {}
    for section, values in config.model_dump(mode="json").items():
        for key, value in values.items():
            dotted = f"{section}.{key}"
            if dotted in NOT_PARAMETERS or _holds_null(value):
                continue
            name = f"{section}_{key}"
            if name in surfaced:
                raise ConfigError(f"config keys '{surfaced[name][0]}' and '{dotted}' both map to input '{name}'")
            surfaced[name] = (dotted, value)
    return surfaced


def _holds_null(value: Any) -> bool:
    """KFP has no typed null, at the top or inside a dict/list (``data.tfds: {data_dir: null}``): such a key stays
    at its compiled value (the base config the resolve task starts from) instead of becoming a pipeline input."""
    if isinstance(value, dict):
        return any(_holds_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_null(v) for v in value)
    return value is None


def _kfp_artifact_class(typ: type[art.Artifact]) -> str:
    """KFP artifact class per edgepipe type: Dataset/Model where the UI has a notion of them, else Artifact."""
    if issubclass(typ, art.Examples):
        return "Dataset"
    if issubclass(typ, (art.Model, art.TFLiteModels, art.Bundle)):
        return "Model"
    return "Artifact"


# ---- source generation ----------------------------------------------------------------------------------------------
@dataclass
class _Names:
    """Identifiers in the generated module: pipeline inputs, one function per node, resolve outputs, sinks."""

    params: dict[str, tuple[str, Any]]  # input -> (dotted config key, default)
    tasks: dict[str, str]  # node -> component function
    specs: dict[str, str]  # node -> resolve output carrying its spec
    sinks: dict[tuple[str, str], tuple[str, type[art.Artifact]]]  # (node, output) -> (pipeline output, type)


def _names(pipeline: Pipeline, config: Config) -> _Names:
    params = config_parameters(config)
    taken = {_RESOLVE, "edgepipe_pipeline", "Outputs", *params}
    tasks = {node.name: _identifier(node.name, taken) for node in pipeline.nodes}
    specs = {node.name: _identifier(f"spec_{tasks[node.name]}", taken) for node in pipeline.nodes}
    consumed = {(ref.node.name, ref.name) for node in pipeline.nodes for ref in node.inputs.values()}
    sinks = {(node.name, out): (_identifier(f"{tasks[node.name]}_{out}", taken), typ)  # outputs nobody consumes
             for node in pipeline.nodes for out, typ in node.component.outputs.items()
             if (node.name, out) not in consumed}
    return _Names(params, tasks, specs, sinks)


def generate_source(pipeline: Pipeline, config: Config, factory: str, compiled: CompiledPipeline) -> str:
    """Python source of the resolve component, one component per node and the pipeline function.

    Generated as text because KFP ships each lightweight component as its function's source; signatures must be
    real annotations for the KFP executor to map artifacts and parameters onto arguments.
    """
    names = _names(pipeline, config)
    compiled.parameters = {name: value for name, (_, value) in names.params.items()}
    compiled.tasks = dict(names.tasks)
    lines = ["from typing import NamedTuple", "from kfp.dsl import Artifact, Dataset, Input, Model, Output, OutputPath"]
    lines += _resolve_source(pipeline, config, factory, names)
    for node in pipeline.nodes:
        lines += _node_source(node, names.tasks[node.name])
    lines += _pipeline_source(pipeline, names)
    return "\n".join(lines) + "\n"


def _resolve_source(pipeline: Pipeline, config: Config, factory: str, names: _Names) -> list[str]:
    signature = [f"{name}: {_KFP_TYPES[type(value)]}" for name, (_, value) in names.params.items()]
    signature += [f"{out}: OutputPath(str)" for out in names.specs.values()]
    overrides = ", ".join(f"{dotted!r}: {name}" for name, (dotted, _) in names.params.items())
    paths = ", ".join(f"{node!r}: {out}" for node, out in names.specs.items())
    shape, base_config = encode_spec(pipeline_shape(pipeline)), encode_spec(config.model_dump(mode="json"))
    return ["", "", f"def {_RESOLVE}({', '.join(signature)}):",
            "    '''Rebuild the pipeline from the run's parameters in the image; write one JSON spec per node.'''",
            "    from edgepipe.pipeline.remote import resolve_node_specs",
            f"    resolve_node_specs({factory!r}, {base_config!r}, {{{overrides}}}, {shape!r}, {{{paths}}})"]


def _node_source(node: Node, function: str) -> list[str]:
    component = node.component
    clash = {_SPEC_INPUT} & (set(component.inputs) | set(component.outputs))
    if clash:
        raise ConfigError(f"node '{node.name}': artifact name '{clash.pop()}' is reserved by the KFP compiler")
    # only connected inputs: an unconnected optional one (``Input[T] | None``) is None in the task, as locally
    signature = [f"{_SPEC_INPUT}: str"]
    signature += [f"{name}: Input[{_kfp_artifact_class(component.inputs[name])}]" for name in node.inputs]
    signature += [f"{name}: Output[{_kfp_artifact_class(t)}]" for name, t in component.outputs.items()]
    summary = f"{node.name}: {component.doc.splitlines()[0] if component.doc else component.name}"
    inputs = ", ".join(f"{n!r}: {n}" for n in node.inputs)
    outputs = ", ".join(f"{n!r}: {n}" for n in component.outputs)
    return ["", "", f"def {function}({', '.join(signature)}):", f"    {summary!r}",
            "    from edgepipe.pipeline.remote import run_task",
            f"    run_task({_SPEC_INPUT}, {{{inputs}}}, {{{outputs}}})"]


def _pipeline_source(pipeline: Pipeline, names: _Names) -> list[str]:
    lines = []
    if names.sinks:
        lines += ["", "", "class Outputs(NamedTuple):"]
        lines += [f"    {out}: {_kfp_artifact_class(typ)}" for out, typ in names.sinks.values()]
    signature = [f"{name}: {_KFP_TYPES[type(value)]} = {value!r}" for name, (_, value) in names.params.items()]
    lines += ["", "", f"def edgepipe_pipeline({', '.join(signature)}){' -> Outputs' if names.sinks else ''}:",
              f"    resolve = {_RESOLVE}_op({', '.join(f'{name}={name}' for name in names.params)})",
              "    resolve.set_display_name('resolve parameters')",
              "    resolve.set_caching_options(False)"]
    for node in pipeline.nodes:
        task = f"t_{names.tasks[node.name]}"
        args = [f"{_SPEC_INPUT}=resolve.outputs[{names.specs[node.name]!r}]"]
        args += [f"{name}=t_{names.tasks[ref.node.name]}.outputs[{ref.name!r}]" for name, ref in node.inputs.items()]
        lines += [f"    {task} = {names.tasks[node.name]}_op({', '.join(args)})",
                  f"    {task}.set_display_name({node.name!r})", f"    {task}.set_caching_options(True)"]
    if names.sinks:
        returned = ", ".join(f"{out}=t_{names.tasks[node]}.outputs[{output!r}]"
                             for (node, output), (out, _) in names.sinks.items())
        lines += [f"    return Outputs({returned})"]
    return lines


def _load_source(source: str, name: str) -> tuple[dict[str, Any], str]:
    """Execute generated source as a module whose functions ``inspect.getsource`` can read (KFP needs that)."""
    filename = f"<edgepipe-kfp-{name}-{id(source):x}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType("edgepipe_kfp_generated")
    module.__file__ = filename
    # dont_inherit: this module's `from __future__ import annotations` would turn the annotations KFP reads into strings
    exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)  # noqa: S102 - generated here
    return module.__dict__, filename
