"""Spec -> nn.Module in three steps over a list of nodes with named inputs: graph resolution
(`from:` to layer names), shape inference (which builds each block and checks its shapes), then
assembly: an nn.Sequential for a straight stack, a torch.fx GraphModule for a graph.

Every spec is first planned on the meta device, where modules have shapes but no storage: the
whole-network checks (`checks`) and the size limits cost no memory, and a refused spec never
allocates its weights. Only a caller that needs real weights pays for a second, real build.
Layers read only earlier layers, so a graph is acyclic by construction.
"""

from __future__ import annotations

import difflib
from collections import Counter, OrderedDict
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import torch
from torch import fx, nn

from .checks import check_plan, plan_bytes
from .errors import NetbuilderError
from .macros import macro_nodes
from .plan import INPUT, Node, PlannedNode
from .registry import BLOCKS, NUM_CLASSES, Block, BlockDef, Registry, Shape
from .spec import LayerSpec, Spec

META = torch.device("meta")
SMALL_MODEL_BYTES = 64 * 2**20  # summarised with real tensors: ResNet-18's weights and outputs


class SpecModel(nn.Sequential):
    """A compiled straight-stack spec: an nn.Sequential whose children carry the layer names."""

    def __init__(self, name: str, layers: OrderedDict[str, nn.Module]):
        super().__init__(layers)
        self.spec_name = name


# ---------------------------------------------------------------- graph resolution


def to_nodes(spec: Spec) -> list[Node]:
    """The spec's layers as graph nodes, each naming the layers (or 'input') it reads."""
    names = [layer.name for layer in spec.layers]
    return [Node(layer.name, layer.block, layer.params,
                 resolve_sources(layer, names), layer.location,
                 f"layers[{layer.index}] ({layer.name})")
            for layer in spec.layers]


def resolve_sources(layer: LayerSpec, names: list[str]) -> tuple[str, ...]:
    """`from:` as layer names: a name, 'input', or -k for the k-th layer before this one."""
    where = f"layers[{layer.index}] ({layer.name}).from"
    resolved = []
    for source in layer.sources or (-1,):
        if isinstance(source, int):
            target = layer.index + source
            if target < -1:
                raise NetbuilderError(f"{source} reaches before the input (this is "
                                      f"layers[{layer.index}])", layer.sources_location, where)
            resolved.append(INPUT if target == -1 else names[target])
        elif source == INPUT:
            resolved.append(INPUT)
        elif source == layer.name:
            raise NetbuilderError(f"a layer cannot read its own output ('{source}'): that "
                                  "would be a cycle", layer.sources_location, where)
        elif source not in names:
            close = difflib.get_close_matches(source, [*names, INPUT], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise NetbuilderError(f"unknown layer '{source}'{hint}", layer.sources_location,
                                  where)
        elif names.index(source) > layer.index:
            raise NetbuilderError(
                f"'{source}' comes later (layers[{names.index(source)}]); a layer reads only "
                "earlier layers, which keeps the graph free of cycles", layer.sources_location,
                where)
        else:
            resolved.append(source)
    return tuple(resolved)


# ---------------------------------------------------------------- shape inference


def resolve_args(definition: BlockDef, params: dict[str, Any], num_classes: int
                 ) -> dict[str, Any]:
    """Fill the 'num_classes' references of channel parameters."""
    return {key: num_classes if value == NUM_CLASSES and definition.param(key).arg.channels
            else value for key, value in params.items()}


def infer_shapes(
    nodes: list[Node], input_shape: Shape, spec: Spec, registry: Registry[BlockDef] = BLOCKS,
    device: torch.device | str | None = None,
) -> list[PlannedNode]:
    """Build every node in order on `device`, checking that each fits the shapes it receives;
    a macro's use is replaced by the nodes of its expansion."""
    plan: list[PlannedNode] = []
    with torch.device(device) if device is not None else nullcontext():
        _plan(nodes, {INPUT: input_shape}, {}, plan, spec, registry, ())
    return plan


def _plan(nodes: list[Node], shapes: dict[str, Shape], aliases: dict[str, str],
          plan: list[PlannedNode], spec: Spec, registry: Registry[BlockDef],
          stack: tuple[str, ...]) -> None:
    for node in nodes:
        node = replace(node, inputs=tuple(aliases.get(s, s) for s in node.inputs))
        if node.block in spec.macros:
            inner = macro_nodes(node, spec.macros[node.block], shapes[node.inputs[0]],
                                spec.num_classes, stack, set(shapes), registry, spec.macros)
            _plan(inner, shapes, aliases, plan, spec, registry, (*stack, node.block))
            aliases[node.name] = plan[-1].node.name  # a macro's output is its last layer's
            shapes[node.name] = plan[-1].out_shape
            continue
        try:
            definition = registry.get(node.block)
            args = resolve_args(definition, node.params, spec.num_classes)
            block = build_block(definition, node, shapes, args)
        except NetbuilderError as error:
            raise error.with_context(node.location, node.where) from None
        shapes[node.name] = block.shape
        plan.append(PlannedNode(node, definition, args, tuple(shapes[s] for s in node.inputs),
                                block))


def build_block(definition: BlockDef, node: Node, shapes: dict[str, Shape],
                args: dict[str, Any]) -> Block:
    """Run a builder on the shapes the node reads; torch's argument errors from inside it name
    the block, not a traceback."""
    if definition.merge and len(node.inputs) < 2:
        raise NetbuilderError(f"{definition.name} merges two or more layers; list them with "
                              "from: [a, b]")
    if not definition.merge and len(node.inputs) > 1:
        raise NetbuilderError(f"{definition.name} reads one layer but from: names "
                              f"{len(node.inputs)}; merge them first with add or concat")
    inputs: Any = ({source: shapes[source] for source in node.inputs} if definition.merge
                   else shapes[node.inputs[0]])
    try:
        return definition.build(inputs, args)
    except NetbuilderError:
        raise
    except (ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NetbuilderError(f"block '{definition.name}' cannot be built with these "
                              f"parameters: {first}") from None


# ---------------------------------------------------------------- assembly


def is_straight(plan: list[PlannedNode]) -> bool:
    """Every layer reads the one before it (the first reads the input), and no name is
    grouped (`stage.conv1` needs a module `stage` holding `conv1`)."""
    previous = INPUT
    for planned in plan:
        if planned.node.inputs != (previous,) or "." in planned.node.name:
            return False
        previous = planned.node.name
    return True


def assemble(name: str, plan: list[PlannedNode]) -> nn.Module:
    """nn.Sequential for a straight stack; otherwise an fx GraphModule whose `code` is a
    readable forward. Either way the layer names are the module names (state_dict keys)."""
    if is_straight(plan):
        return SpecModel(name, OrderedDict((p.node.name, p.block.module) for p in plan))
    no_inplace_on_shared_inputs(plan)
    root = nn.Module()
    graph = fx.Graph()
    values = {INPUT: graph.placeholder("x")}
    for planned in plan:
        install(root, planned.node.name, planned.block.module)
        values[planned.node.name] = graph.call_module(
            planned.node.name, tuple(values[source] for source in planned.node.inputs))
    graph.output(values[plan[-1].node.name])
    model = fx.GraphModule(root, graph, class_name="SpecGraph")
    model.spec_name = name
    return model


def install(root: nn.Module, name: str, module: nn.Module) -> None:
    """Add `module` at a dotted path (`stage.1.conv1`), creating the groups on the way; the
    dotted path is then its state_dict prefix, as in torchvision's `layer1.0.conv1`."""
    *groups, leaf = name.split(".")
    for group in groups:
        if not hasattr(root, group):
            root.add_module(group, nn.Module())
        root = getattr(root, group)
    root.add_module(leaf, module)


def no_inplace_on_shared_inputs(plan: list[PlannedNode]) -> None:
    """A layer whose input another layer also reads must not overwrite it: the in-place flag of
    its first module (a stand-alone ReLU, say) is turned off."""
    readers = Counter(source for planned in plan for source in planned.node.inputs)
    for planned in plan:
        if any(readers[source] > 1 for source in planned.node.inputs):
            first = next((m for m in planned.block.module.modules()
                          if next(m.children(), None) is None), None)
            if getattr(first, "inplace", False):
                first.inplace = False


def compile_spec(
    spec: Spec, registry: Registry[BlockDef] = BLOCKS, device: torch.device | str | None = None
) -> tuple[nn.Module, list[PlannedNode]]:
    """The model and its plan (per-layer shapes and windows, used by the summary).

    The plan is checked on the meta device first; `device="meta"` returns that storage-free
    model (enough for shapes, counts and the summary), anything else builds real weights there.
    """
    nodes, plan = checked_plan(spec, registry)
    if device is None or torch.device(device) != META:
        plan = infer_shapes(nodes, spec.input_shape, spec, registry, device)
    return assemble(spec.name, plan), plan


def compile_for_summary(spec: Spec, registry: Registry[BlockDef] = BLOCKS
                        ) -> tuple[nn.Module, list[PlannedNode]]:
    """The model the summary traces: real (and fast) when small, on the meta device when its
    weights and one image's outputs pass SMALL_MODEL_BYTES. A meta forward needs no memory,
    but some of its ops (torch.cat) import torch's compiler, seconds of start-up."""
    nodes, plan = checked_plan(spec, registry)
    if sum(plan_bytes(plan, spec.input_shape)) <= SMALL_MODEL_BYTES:
        plan = infer_shapes(nodes, spec.input_shape, spec, registry, None)
    return assemble(spec.name, plan), plan


def checked_plan(spec: Spec, registry: Registry[BlockDef]) -> tuple[list[Node], list[PlannedNode]]:
    """The spec's nodes and their plan on the meta device, after the whole-network checks."""
    nodes = to_nodes(spec)
    plan = infer_shapes(nodes, spec.input_shape, spec, registry, META)
    check_plan(plan, spec.input_shape, spec.num_classes)
    return nodes, plan


def build_model(spec: Spec, registry: Registry[BlockDef] = BLOCKS) -> nn.Module:
    """The model with real, initialised weights (after the meta-device checks)."""
    return compile_spec(spec, registry)[0]
