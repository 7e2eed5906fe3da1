"""Spec -> nn.Module in two passes over a list of nodes with named outputs:
shape inference (which builds each block and checks its shapes), then assembly.

Every node names its inputs, so graph edges (residual `add`, branching `concat`) slot in later
without changing either pass; today the spec language writes straight stacks only.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from torch import nn

from . import blocks as _builtin_blocks  # noqa: F401  (registers the built-in blocks)
from .errors import Location, NetbuilderError
from .registry import BLOCKS, NUM_CLASSES, Block, BlockDef, Registry, Shape
from .spec import Spec

INPUT = "input"  # the name under which the model's input is available to nodes


@dataclass(frozen=True)
class Node:
    """One layer of the graph: which block, with what parameters, fed by which outputs."""

    name: str
    block: str
    params: dict[str, Any]
    inputs: tuple[str, ...]
    location: Location
    where: str


@dataclass
class PlannedNode:
    """A node after shape inference: its resolved arguments, shapes and built block."""

    node: Node
    definition: BlockDef
    args: dict[str, Any]
    in_shape: Shape
    block: Block

    @property
    def out_shape(self) -> Shape:
        return self.block.shape


class SpecModel(nn.Sequential):
    """A compiled straight-stack spec: an nn.Sequential whose children carry the layer names."""

    def __init__(self, name: str, layers: OrderedDict[str, nn.Module]):
        super().__init__(layers)
        self.spec_name = name


def to_nodes(spec: Spec) -> list[Node]:
    """The spec's layers as graph nodes; each reads the previous one's output."""
    nodes, previous = [], INPUT
    for layer in spec.layers:
        where = f"layers[{layer.index}] ({layer.name})"
        nodes.append(Node(layer.name, layer.block, layer.params, (previous,), layer.location,
                          where))
        previous = layer.name
    return nodes


def resolve_args(
    definition: BlockDef, params: dict[str, Any], num_classes: int, width_multiplier: float
) -> dict[str, Any]:
    """Fill 'num_classes' references and scale channel counts by the width multiplier."""
    args = dict(params)
    for param in definition.params:
        value = args.get(param.name)
        if not param.arg.channels or value is None:
            continue
        if value == NUM_CLASSES:
            args[param.name] = num_classes
        elif width_multiplier != 1.0:
            args[param.name] = max(1, int(value * width_multiplier))
    return args


def infer_shapes(
    nodes: list[Node], input_shape: Shape, spec: Spec, registry: Registry[BlockDef] = BLOCKS
) -> list[PlannedNode]:
    """Build every node in order, checking that each fits the shape it receives."""
    shapes: dict[str, Shape] = {INPUT: input_shape}
    plan = []
    for node in nodes:
        try:
            definition = registry.get(node.block)
            (source,) = node.inputs  # one input until merge blocks exist
            args = resolve_args(definition, node.params, spec.num_classes, spec.width_multiplier)
            block = definition.build(shapes[source], args)
        except NetbuilderError as error:
            raise error.with_context(node.location, node.where) from None
        shapes[node.name] = block.shape
        plan.append(PlannedNode(node, definition, args, shapes[source], block))
    return plan


def assemble(name: str, plan: list[PlannedNode]) -> SpecModel:
    return SpecModel(name, OrderedDict((p.node.name, p.block.module) for p in plan))


def compile_spec(spec: Spec, registry: Registry[BlockDef] = BLOCKS) -> tuple[SpecModel,
                                                                               list[PlannedNode]]:
    """The model and its plan (per-layer shapes and windows, used by the summary)."""
    plan = infer_shapes(to_nodes(spec), spec.input_shape, spec, registry)
    return assemble(spec.name, plan), plan


def build_model(spec: Spec, registry: Registry[BlockDef] = BLOCKS) -> SpecModel:
    return compile_spec(spec, registry)[0]
