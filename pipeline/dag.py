"""A pipeline is a DAG of nodes, validated when it is built, never halfway through a run.

Edges come from the inputs each node declares (``node.inputs[name] -> upstream.outputs[...]``); the order is
``graphlib``'s topological sort. Everything that would otherwise fail at run time, after minutes of training, is
rejected here: duplicate names, inputs bound to nodes outside the pipeline, required inputs left unbound, artifact
type mismatches, and cycles.
"""
from __future__ import annotations

import graphlib
from dataclasses import dataclass
from typing import Any, Iterable

from edgepipe.pipeline.component import Node
from edgepipe.pipeline.errors import PipelineDefinitionError


@dataclass
class Pipeline:
    """A named, validated DAG of nodes. ``nodes`` keeps topological order after construction."""

    name: str
    nodes: list[Node]

    def __init__(self, name: str, nodes: Iterable[Node]):
        self.name = name
        self.nodes = list(nodes)
        self._validate_names()
        self._validate_inputs()
        self.nodes = self._topological_order()

    def _validate_names(self) -> None:
        seen: set[str] = set()
        for node in self.nodes:
            if node.name in seen:
                raise PipelineDefinitionError(
                    f"two nodes are named '{node.name}'; give one a name of its own with .named(...)")
            seen.add(node.name)

    def _validate_inputs(self) -> None:
        members = {id(node) for node in self.nodes}
        for node in self.nodes:
            for input_name, expected in node.component.inputs.items():
                ref = node.inputs.get(input_name)
                if ref is None and input_name in node.component.optional_inputs:
                    continue
                if ref is None:
                    raise PipelineDefinitionError(
                        f"node '{node.name}': input '{input_name}' ({expected.type_name}) is not connected")
                if id(ref.node) not in members:
                    raise PipelineDefinitionError(
                        f"node '{node.name}': input '{input_name}' comes from node '{ref.node.name}', "
                        f"which is not in pipeline '{self.name}'")
                if not issubclass(ref.type, expected):
                    raise PipelineDefinitionError(
                        f"node '{node.name}': input '{input_name}' expects {expected.type_name} but "
                        f"'{ref.node.name}.{ref.name}' is {ref.type.type_name}")

    def _topological_order(self) -> list[Node]:
        sorter: graphlib.TopologicalSorter = graphlib.TopologicalSorter()
        for node in self.nodes:
            sorter.add(node, *self.upstream(node))
        try:
            return list(sorter.static_order())
        except graphlib.CycleError as err:
            cycle = " -> ".join(n.name for n in err.args[1])
            raise PipelineDefinitionError(f"pipeline '{self.name}' has a cycle: {cycle}") from None

    @staticmethod
    def upstream(node: Node) -> list[Node]:
        unique: dict[int, Node] = {}
        for ref in node.inputs.values():
            unique[id(ref.node)] = ref.node
        return list(unique.values())

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def describe(self) -> list[dict[str, Any]]:
        """A plain description of the DAG (used by the CLI and by compilers for other orchestrators)."""
        return [
            {
                "name": node.name,
                "component": node.component.name,
                "inputs": {k: f"{v.node.name}.{v.name}" for k, v in node.inputs.items()},
                "outputs": {k: t.type_name for k, t in node.component.outputs.items()},
                "params": node.component.resolved_params(node),
            }
            for node in self.nodes
        ]
