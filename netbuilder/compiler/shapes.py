"""The first two steps of compiling: the spec's layers as graph nodes (`from:` resolved to
layer names by the spec's one rule), then shape inference, which builds every block on the
shapes it receives and so checks that it fits them; a macro's use is replaced by its expansion.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import torch

from ..errors import NetbuilderError
from ..limits import MAX_LAYERS
from ..spec.registry import BLOCKS, NUM_CLASSES, Block, BlockDef, Registry, Shape
from ..spec.sources import INPUT, SCOPE_INPUT, scope_position, unknown_layer
from ..spec.types import LayerSpec, Spec
from .macros import Expansion, macro_nodes
from .plan import Node, PlannedNode


def to_nodes(spec: Spec) -> list[Node]:
    """The spec's layers as graph nodes, each naming the layers (or 'input') it reads."""
    names = [layer.name for layer in spec.layers]
    return [
        Node(
            layer.name,
            layer.block,
            layer.params,
            layer_inputs(layer, names),
            layer.location,
            f"layers[{layer.index}] ({layer.name})",
        )
        for layer in spec.layers
    ]


def layer_inputs(layer: LayerSpec, names: list[str]) -> tuple[str, ...]:
    """`from:` of a top-level layer as layer names (the previous layer when it says none)."""
    resolved = []
    for source in layer.sources or (-1,):
        try:
            target = scope_position(source, layer.index, names)
            if isinstance(target, str):
                raise unknown_layer(target, names)
        except NetbuilderError as error:
            raise error.with_context(
                layer.sources_location, f"layers[{layer.index}] ({layer.name}).from"
            ) from None
        resolved.append(INPUT if target == SCOPE_INPUT else names[target])
    return tuple(resolved)


def resolve_args(definition: BlockDef, params: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """Fill the 'num_classes' references of channel parameters."""
    return {
        key: num_classes if value == NUM_CLASSES and definition.param(key).arg.channels else value
        for key, value in params.items()
    }


def infer_shapes(
    nodes: list[Node],
    input_shape: Shape,
    spec: Spec,
    registry: Registry[BlockDef] = BLOCKS,
    device: torch.device | str | None = None,
) -> list[PlannedNode]:
    """Build every node in order on `device`, checking that each fits the shapes it receives;
    a macro's use is replaced by the nodes of its expansion."""
    plan: list[PlannedNode] = []
    expansion = Expansion(registry, spec.macros, spec.index_base)
    with torch.device(device) if device is not None else nullcontext():
        _plan(nodes, {INPUT: input_shape}, {}, plan, spec, expansion, ())
    return plan


def _plan(
    nodes: list[Node],
    shapes: dict[str, Shape],
    aliases: dict[str, str],
    plan: list[PlannedNode],
    spec: Spec,
    expansion: Expansion,
    stack: tuple[str, ...],
) -> None:
    registry = expansion.registry
    for node in nodes:
        node = replace(node, inputs=tuple(aliases.get(s, s) for s in node.inputs))
        if node.block in spec.macros:
            inner = macro_nodes(
                node,
                spec.macros[node.block],
                shapes[node.inputs[0]],
                spec.num_classes,
                stack,
                shapes,  # the names planned so far
                expansion,
            )
            _plan(inner, shapes, aliases, plan, spec, expansion, (*stack, node.block))
            aliases[node.name] = plan[-1].node.name  # a macro's output is its last layer's
            shapes[node.name] = plan[-1].out_shape
            continue
        if len(plan) >= MAX_LAYERS:
            raise NetbuilderError(
                f"more than {MAX_LAYERS:,} layers once the macros are expanded",
                node.location,
                node.where,
            )
        try:
            definition = registry.get(node.block)
            args = resolve_args(definition, node.params, spec.num_classes)
            block = build_block(definition, node, shapes, args)
        except NetbuilderError as error:
            raise error.with_context(node.location, node.where) from None
        shapes[node.name] = block.shape
        plan.append(
            PlannedNode(node, definition, args, tuple(shapes[s] for s in node.inputs), block)
        )


def build_block(
    definition: BlockDef, node: Node, shapes: dict[str, Shape], args: dict[str, Any]
) -> Block:
    """Run a builder on the shapes the node reads; torch's argument errors from inside it name
    the block, not a traceback."""
    if definition.merge and len(node.inputs) < 2:
        raise NetbuilderError(
            f"{definition.name} merges two or more layers; list them with from: [a, b]"
        )
    if not definition.merge and len(node.inputs) > 1:
        raise NetbuilderError(
            f"{definition.name} reads one layer but from: names "
            f"{len(node.inputs)}; merge them first with add or concat"
        )
    inputs: Any = (
        {source: shapes[source] for source in node.inputs}
        if definition.merge
        else shapes[node.inputs[0]]
    )
    try:
        return definition.build(inputs, args)
    except NetbuilderError:
        raise
    except (ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NetbuilderError(
            f"block '{definition.name}' cannot be built with these parameters: {first}"
        ) from None
