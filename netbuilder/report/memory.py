"""Peak activation memory for inference: what the tensors of one forward pass hold at their
fullest, the figure a microcontroller's SRAM (or a phone's budget) must fit.

Computed, not estimated: the model is traced into its operations (torch.fx, every module down
to PyTorch's own layers), run once (on the meta device for a large model: shapes, no storage),
and each result is followed as PyTorch's eager mode keeps it: a new tensor is allocated when
an operation makes one and freed after its last reader; an in-place operation
(ReLU(inplace=True)) or a view (flatten, permute) allocates nothing and keeps its source
alive; a concatenation holds its inputs and its output at once. The peak is the largest sum
of live tensors at any operation, the image included (its caller holds it to the end), for a
batch of one. Weights are not activations and are not counted; neither are a backend's
workspaces (PyTorch's CPU convolutions unfold their input, im2col, for a dense k x k conv), so
a measured figure sits above it: by little for depthwise and 1x1 convs, by much for a small
net of dense 3x3 convs (bench/memory.py compares them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from ..spec.registry import Shape


@dataclass(frozen=True)
class PeakMemory:
    """The inference peak for one image, in bytes, and the layer where it is reached."""

    bytes: int
    layer: str  # the spec layer running when the peak is reached ("input" before any)
    bytes_per_value: int  # 4: float32; 1: int8 activations


class LayerTracer(fx.Tracer):
    """fx's tracer, noting for every node the module path it was traced inside (its layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        self.stack.append(self.path_of_module(m))
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self.stack.pop()

    def create_node(self, *args: Any, **kwargs: Any) -> fx.Node:
        node = super().create_node(*args, **kwargs)
        node.meta["module_path"] = self.stack[-1] if self.stack else ""
        return node


def peak_activation_memory(
    model: nn.Module, input_shape: Shape, layers: list[str], bytes_per_value: int = 4
) -> PeakMemory:
    """The peak (see the module docstring) of `model` in eval mode on one image; `layers` are
    the spec's layer names, to say where the peak is. The model may live on the meta device."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        graph = LayerTracer().trace(model)
        traced = fx.GraphModule(model, graph)
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("meta")
        with torch.no_grad():
            events = _run(traced, torch.zeros((1, *input_shape), device=device))
    finally:
        for module, training in modes.items():
            module.training = training
    return _peak(events, graph, layers, bytes_per_value)


@dataclass
class _Buffer:
    values: int  # elements of the storage
    born: int  # the operation that allocates it (-1: the input)
    last: int  # the last operation that reads it (or, for the output, the end)


def _run(traced: fx.GraphModule, example: torch.Tensor) -> tuple[list[_Buffer], list[fx.Node]]:
    """Run the traced graph, grouping results into storages (a view or an in-place result
    shares its source's) and noting when each is made and last read."""
    order: list[fx.Node] = [node for node in traced.graph.nodes if node.op != "output"]
    position = {node: index for index, node in enumerate(order)}
    buffers: list[_Buffer] = []
    owner: dict[int, int] = {}  # id(tensor) -> buffer index
    keep: list[torch.Tensor] = []  # alive, so that ids stay unique

    class Recorder(fx.Interpreter):
        def run_node(self, node: fx.Node) -> Any:
            step = position.get(node, len(order))
            result = super().run_node(node)
            for source in node.all_input_nodes:
                value = self.env.get(source)
                if isinstance(value, torch.Tensor) and id(value) in owner:
                    buffers[owner[id(value)]].last = max(buffers[owner[id(value)]].last, step)
            if isinstance(result, torch.Tensor) and node.op != "output":
                base = result._base if result._base is not None else result
                if id(result) in owner:  # in place: the same tensor object
                    pass
                elif id(base) in owner:  # a view of a live tensor
                    owner[id(result)] = owner[id(base)]
                else:
                    owner[id(result)] = len(buffers)
                    held = node.op == "placeholder"  # the caller holds the image to the end
                    buffers.append(
                        _Buffer(result.numel(), -1 if held else step, len(order) if held else step)
                    )
                keep.append(result)
            return result

    output = Recorder(traced).run(example)
    if isinstance(output, torch.Tensor) and id(output) in owner:
        buffers[owner[id(output)]].last = len(order)  # the result is alive at the end
    return buffers, order


def _peak(
    events: tuple[list[_Buffer], list[fx.Node]],
    graph: fx.Graph,
    layers: list[str],
    bytes_per_value: int,
) -> PeakMemory:
    buffers, order = events
    best, at = 0, -1
    for step in range(-1, len(order) + 1):
        live = sum(b.values for b in buffers if b.born <= step <= b.last)
        if live > best:
            best, at = live, step
    path = order[at].meta.get("module_path", "") if 0 <= at < len(order) else ""
    return PeakMemory(best * bytes_per_value, _layer_of(path, layers), bytes_per_value)


def _layer_of(path: str, layers: list[str]) -> str:
    """The spec layer a module path belongs to: the longest layer name it starts with."""
    matches = [name for name in layers if path == name or path.startswith(f"{name}.")]
    return max(matches, key=len) if matches else "input"
