"""Declaring components: plain typed functions whose signature is their contract.

    @component
    def normalize(examples: Input[Examples], statistics: Input[ExampleStatistics],
                  transformed: Output[Examples], params: Output[TransformParams],
                  method: str = "zscore", beam_args: list[str] | None = None) -> dict:
        ...

``Input[T]`` parameters are artifacts produced upstream (``Input[T] | None`` may stay unconnected and is then
None), ``Output[T]`` parameters are fresh artifacts the runner
creates (in a temporary place) and moves into the store when the function returns, and every other parameter is a
JSON-serializable value that is part of the cache key. ``InputPath`` marks a parameter naming files outside the
store (a CSV, a glob): their content is fingerprinted, so editing the file invalidates the cache. The function may
return a small dict of metrics that the metadata store records.

Calling a component does not run it: it returns a :class:`Node` bound to upstream outputs and parameter values,
validated immediately (unknown or missing parameters, wrong input types), which a :class:`Pipeline` wires into a DAG.

A parameter may also be a pydantic model (a config section such as a task's ``evaluate`` options, passed whole
instead of ten copied keyword arguments): :func:`param_json` writes it as its class and its fields, keys sorted,
for the cache key, the metadata store and a compiled task's JSON spec, and :func:`param_value` rebuilds it in the
task's container.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from pydantic import BaseModel

from edgepipe.pipeline.artifacts import Artifact
from edgepipe.pipeline.code_version import code_digest
from edgepipe.pipeline.errors import PipelineDefinitionError

A = TypeVar("A", bound=Artifact)


class Input(Generic[A]):
    """Annotation: an artifact consumed by the component."""


class Output(Generic[A]):
    """Annotation: an artifact produced by the component."""


class InputPath(str):
    """Annotation for a parameter naming external files; their content joins the cache key."""


@dataclass(frozen=True)
class OutputRef:
    """A reference to one output of one node: what a downstream node's input is bound to."""

    node: "Node"
    name: str
    type: type[Artifact]

    def __repr__(self) -> str:
        return f"{self.node.name}.outputs[{self.name!r}]"


@dataclass
class Node:
    """One use of a component in a pipeline: inputs bound to upstream outputs, parameters bound to values."""

    component: "Component"
    name: str
    inputs: dict[str, OutputRef] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs(self) -> dict[str, OutputRef]:
        return {name: OutputRef(self, name, typ) for name, typ in self.component.outputs.items()}

    def named(self, name: str) -> "Node":
        """Give the node a name of its own (needed when one component is used twice in a pipeline)."""
        self.name = name
        return self

    def connect(self, input_name: str, ref: OutputRef) -> "Node":
        """Bind (or re-bind) an input after creation; the pipeline validates the result."""
        if input_name not in self.component.inputs:
            raise PipelineDefinitionError(
                f"node '{self.name}': component '{self.component.name}' has no input '{input_name}' "
                f"(inputs: {', '.join(self.component.inputs) or 'none'})")
        self.inputs[input_name] = ref
        return self

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


class Component:
    """A function plus its declared inputs, outputs and parameters."""

    def __init__(self, fn: Callable[..., Any], version: str = "1", execution_params: tuple[str, ...] = ()):
        self.fn = fn
        self.name = fn.__name__
        self.version = version
        self.execution_params = frozenset(execution_params)
        self.doc = inspect.getdoc(fn) or ""
        self.inputs: dict[str, type[Artifact]] = {}
        self.outputs: dict[str, type[Artifact]] = {}
        self.params: dict[str, inspect.Parameter] = {}
        self.path_params: set[str] = set()
        self.optional_inputs: set[str] = set()
        hints = typing.get_type_hints(fn)
        for pname, param in inspect.signature(fn).parameters.items():
            hint = hints.get(pname, Any)
            optional_input = _optional_input(hint)
            origin = typing.get_origin(hint)
            if optional_input is not None:
                self.inputs[pname] = optional_input
                self.optional_inputs.add(pname)
            elif origin is Input:
                self.inputs[pname] = typing.get_args(hint)[0]
            elif origin is Output:
                self.outputs[pname] = typing.get_args(hint)[0]
            else:
                self.params[pname] = param
                if _mentions(hint, InputPath):
                    self.path_params.add(pname)

    @functools.cached_property
    def code_version(self) -> str:
        """Declared version plus a hash of the code the component runs: its module and every project module it
        imports, transitively (:mod:`edgepipe.pipeline.code_version`), so editing a helper in another package
        invalidates exactly the components that use it. Computed when a cache key first needs it, not at
        decoration, when the package the component lives in may still be half imported."""
        source_file = inspect.getsourcefile(self.fn)
        if source_file is None:
            digest = hashlib.sha256(self.fn.__qualname__.encode()).hexdigest()
        else:
            digest = code_digest(source_file, self.fn.__module__)
        return f"{self.version}:{digest[:16]}"

    def __call__(self, **kwargs: Any) -> Node:
        name = kwargs.pop("_name", self.name)
        node = Node(self, name)
        for key, value in kwargs.items():
            if key in self.inputs:
                if not isinstance(value, OutputRef):
                    raise PipelineDefinitionError(
                        f"node '{name}': input '{key}' must be an upstream output (node.outputs[...]), "
                        f"got {type(value).__name__}")
                node.inputs[key] = value
            elif key in self.params:
                unwrap = getattr(type(value), "__param_value__", None)  # a stand-in (a recorded config section)
                node.params[key] = unwrap(value) if unwrap else value
            elif key in self.outputs:
                raise PipelineDefinitionError(f"node '{name}': '{key}' is an output; outputs are not passed in")
            else:
                allowed = sorted([*self.inputs, *self.params])
                raise PipelineDefinitionError(
                    f"node '{name}': component '{self.name}' has no parameter '{key}' (allowed: {', '.join(allowed)})")
        for pname, param in self.params.items():
            if pname not in node.params and param.default is inspect.Parameter.empty:
                raise PipelineDefinitionError(f"node '{name}': required parameter '{pname}' is not set")
        return node

    def resolved_params(self, node: Node) -> dict[str, Any]:
        """Parameters with defaults filled in, as the function will receive them."""
        values = {p: param.default for p, param in self.params.items() if param.default is not inspect.Parameter.empty}
        values.update(node.params)
        return values

    def __repr__(self) -> str:
        return f"Component({self.name})"


SECTION_TAG = "$section"  # a pydantic parameter in JSON: {"$section": "module:Class", "values": {...}}


def param_json(value: Any) -> Any:
    """``value`` as JSON data: a pydantic model becomes its class and its ``model_dump(mode="json")`` (so equal
    sections give equal keys whatever the order their fields were set in; the class is kept so two tasks' sections
    with the same values do not collide, and so :func:`param_value` can rebuild it); lists and dicts are walked."""
    if isinstance(value, BaseModel):
        cls = type(value)
        return {SECTION_TAG: f"{cls.__module__}:{cls.__qualname__}", "values": value.model_dump(mode="json")}
    if isinstance(value, dict):
        return {key: param_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [param_json(item) for item in value]
    return value


def param_value(value: Any) -> Any:
    """The inverse of :func:`param_json`: a task's JSON parameter back to what the function takes (a section is
    validated again by its class, so a hand-edited spec with a bad value fails with the key named)."""
    if isinstance(value, dict) and set(value) == {SECTION_TAG, "values"}:
        module, _, name = str(value[SECTION_TAG]).partition(":")
        try:
            cls: Any = importlib.import_module(module)
            for part in name.split("."):
                cls = getattr(cls, part)
        except (ImportError, AttributeError):
            raise PipelineDefinitionError(f"parameter section '{value[SECTION_TAG]}' cannot be imported here") from None
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            raise PipelineDefinitionError(f"parameter section '{value[SECTION_TAG]}' is not a pydantic model")
        return cls.model_validate(value["values"])
    if isinstance(value, dict):
        return {key: param_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [param_value(item) for item in value]
    return value


def _optional_input(hint: Any) -> type[Artifact] | None:
    """``Input[T] | None``: an input the pipeline may leave unconnected; the component then receives None."""
    args = typing.get_args(hint)
    if type(None) not in args:
        return None
    for arg in args:
        if typing.get_origin(arg) is Input:
            return typing.get_args(arg)[0]
    return None


def _mentions(hint: Any, target: type) -> bool:
    if hint is target:
        return True
    return any(_mentions(arg, target) for arg in typing.get_args(hint))


def component(fn: Callable[..., Any] | None = None, *, version: str = "1",
              execution_params: tuple[str, ...] = ("beam_args",)) -> Any:
    """Decorator turning a typed function into a :class:`Component`.

    ``execution_params`` name parameters that change how the work runs, not its result (the Beam runner, the
    distribution strategy); they are excluded from the cache key, so moving a pipeline from DirectRunner to a
    cluster reuses its cache.
    """

    def wrap(f: Callable[..., Any]) -> Component:
        return Component(f, version=version, execution_params=execution_params)

    return wrap(fn) if fn is not None else wrap
