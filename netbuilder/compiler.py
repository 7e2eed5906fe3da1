"""Spec -> nn.Module in two passes over a list of nodes with named outputs:
shape inference (which builds each block and checks its shapes), then assembly.

Every spec is first planned on the meta device, where modules have shapes but no storage: the
whole-network checks (`checks`) and the size limits cost no memory, and a refused spec never
allocates its weights. Only a caller that needs real weights pays for a second, real build.

Every node names its inputs, so graph edges (residual `add`, branching `concat`) slot in later
without changing either pass; today the spec language writes straight stacks only.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from . import blocks as _builtin_blocks  # noqa: F401  (registers the built-in blocks)
from .checks import check_plan
from .errors import NetbuilderError
from .plan import INPUT, Node, PlannedNode
from .registry import BLOCKS, NUM_CLASSES, BlockDef, Registry, Shape
from .spec import Spec

META = torch.device("meta")


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
    nodes: list[Node], input_shape: Shape, spec: Spec, registry: Registry[BlockDef] = BLOCKS,
    device: torch.device | str | None = None,
) -> list[PlannedNode]:
    """Build every node in order on `device`, checking that each fits the shape it receives."""
    shapes: dict[str, Shape] = {INPUT: input_shape}
    plan = []
    with torch.device(device) if device is not None else nullcontext():
        for node in nodes:
            try:
                definition = registry.get(node.block)
                (source,) = node.inputs  # one input until merge blocks exist
                args = resolve_args(definition, node.params, spec.num_classes,
                                    spec.width_multiplier)
                block = build_block(definition, shapes[source], args)
            except NetbuilderError as error:
                raise error.with_context(node.location, node.where) from None
            shapes[node.name] = block.shape
            plan.append(PlannedNode(node, definition, args, shapes[source], block))
    return plan


def build_block(definition: BlockDef, in_shape: Shape, args: dict[str, Any]) -> Any:
    """Run a builder; torch's argument errors from inside it name the block, not a traceback."""
    try:
        return definition.build(in_shape, args)
    except NetbuilderError:
        raise
    except (ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NetbuilderError(f"block '{definition.name}' cannot be built with these "
                              f"parameters: {first}") from None


def assemble(name: str, plan: list[PlannedNode]) -> SpecModel:
    return SpecModel(name, OrderedDict((p.node.name, p.block.module) for p in plan))


def compile_spec(
    spec: Spec, registry: Registry[BlockDef] = BLOCKS, device: torch.device | str | None = None
) -> tuple[SpecModel, list[PlannedNode]]:
    """The model and its plan (per-layer shapes and windows, used by the summary).

    The plan is checked on the meta device first; `device="meta"` returns that storage-free
    model (enough for shapes, counts and the summary), anything else builds real weights there.
    """
    nodes = to_nodes(spec)
    plan = infer_shapes(nodes, spec.input_shape, spec, registry, META)
    check_plan(plan, spec.input_shape, spec.num_classes)
    if device is None or torch.device(device) != META:
        plan = infer_shapes(nodes, spec.input_shape, spec, registry, device)
    return assemble(spec.name, plan), plan


def build_model(spec: Spec, registry: Registry[BlockDef] = BLOCKS) -> SpecModel:
    """The model with real, initialised weights (after the meta-device checks)."""
    return compile_spec(spec, registry)[0]
