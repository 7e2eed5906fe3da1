"""The last step of compiling: planned blocks assembled into one nn.Module, an nn.Sequential
for a straight stack, a torch.fx GraphModule (whose `code` is a readable forward) for a graph.
Either way the layer names are the module names, and so the state_dict keys."""

from __future__ import annotations

from collections import Counter, OrderedDict

from torch import fx, nn

from ..spec.sources import INPUT
from .plan import PlannedNode


class SpecModel(nn.Sequential):
    """A compiled straight-stack spec: an nn.Sequential whose children carry the layer names."""

    def __init__(self, name: str, layers: OrderedDict[str, nn.Module]):
        super().__init__(layers)
        self.spec_name = name


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
            planned.node.name, tuple(values[source] for source in planned.node.inputs)
        )
    graph.output(values[plan[-1].node.name])
    model = fx.GraphModule(root, graph, class_name="SpecGraph")
    model.spec_name = name  # type: ignore[assignment]  # as SpecModel carries it
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
            first = next(
                (m for m in planned.block.module.modules() if next(m.children(), None) is None),
                None,
            )
            if first is not None and getattr(first, "inplace", False):
                first.inplace = False
