"""The model summary as plain data: per-layer shapes, parameters and multiply-adds, totals, a
memory estimate and the receptive field. No formatting here (see `formatting`).

Shapes are one sample's shape, like the compiler's (`(C, H, W)`, or `(F,)` once flat): the
batch dimension is never shown, in the table or in JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..compiler import compile_for_summary
from ..compiler.plan import PlannedNode
from ..errors import NetbuilderError
from ..spec.registry import BLOCKS, BlockDef, Registry, Shape
from ..spec.sources import INPUT
from ..spec.types import Spec
from .memory import PeakMemory, peak_activation_memory

BYTES_PER_VALUE = 4  # float32, as torchsummary assumes
MB = 1024**2


@dataclass(frozen=True)
class LayerRow:
    """One row of the layer table: a spec layer (depth 1) or a module inside one (depth >= 2)."""

    name: str  # spec layer name, or a dotted module path such as 'fire2.squeeze'
    type: str  # the block name at depth 1 ('conv_bn'), the module class below ('Conv2d')
    output_shape: Shape | None  # one sample's shape; None for a module the forward never called
    params: int
    trainable_params: int
    macs: int  # multiply-adds for one sample
    depth: int
    inputs: tuple[str, ...] = ()  # the layers a spec layer reads ('input' for the model input)


@dataclass(frozen=True)
class Memory:
    """torchsummary's size estimate in MiB (it labels them MB) for a batch of one."""

    input: float
    forward_backward: float
    params: float

    @property
    def total(self) -> float:
        return self.input + self.forward_backward + self.params


@dataclass(frozen=True)
class ReceptiveFieldRow:
    """Receptive-field arithmetic through one layer, along the height: size n, jump j (distance
    in input pixels between neighbouring outputs), receptive field r and the centre `start` of
    the first output's field, all before (`_in`) and after the layer."""

    layer: str
    n_in: int
    n_out: int
    j_in: int
    j_out: int
    r_in: int
    r_out: int
    start_in: float
    start: float


@dataclass(frozen=True)
class Summary:
    """Everything the summary shows, as data; rendering lives in `formatting`."""

    name: str
    input_shape: Shape
    output_shape: Shape
    depth: int
    layers: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int
    total_macs: int
    memory: Memory
    receptive_field: tuple[ReceptiveFieldRow, ...]
    peak: PeakMemory | None = None  # inference peak activation memory, float32, batch 1

    @property
    def peak_int8_bytes(self) -> int | None:
        """The same peak with int8 activations (one byte a value)."""
        return None if self.peak is None else self.peak.bytes // self.peak.bytes_per_value

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def final_receptive_field(self) -> int | None:
        """The network's receptive field (the last row's r_out); None without feature maps."""
        return self.receptive_field[-1].r_out if self.receptive_field else None

    @property
    def is_graph(self) -> bool:
        """Some layer reads something other than the layer before it."""
        previous = "input"
        for row in (r for r in self.layers if r.depth == 1):
            if row.inputs != (previous,):
                return True
            previous = row.name
        return False

    @property
    def edges(self) -> list[tuple[str, str]]:
        """(source, layer) for every input of every layer."""
        return [
            (source, row.name) for row in self.layers if row.depth == 1 for source in row.inputs
        ]


@dataclass
class Trace:
    """What the forward hooks saw: each module's output shape and MACs, and the number of
    activation values the memory estimate counts (see `estimate_memory`)."""

    shapes: dict[str, Shape]
    macs: dict[str, int]
    activation_values: int = 0


def summarize_spec(spec: Spec, depth: int = 1, registry: Registry[BlockDef] = BLOCKS) -> Summary:
    """The summary of a spec: planned, checked, compiled (real weights when small) and traced.
    Every report (build, diff, sizes, the zoo, sweeps, a run's summary.txt) starts here."""
    return planned_summary(spec, depth, registry)[0]


def planned_summary(
    spec: Spec, depth: int = 1, registry: Registry[BlockDef] = BLOCKS
) -> tuple[Summary, list[PlannedNode]]:
    """`summarize_spec`, with the plan it came from (windows, blocks) for reports that need it."""
    check_depth(depth)  # before the compile it would otherwise waste
    model, plan = compile_for_summary(spec, registry)
    return summarize(model, plan, spec, depth), plan


def check_depth(depth: object) -> None:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise NetbuilderError(f"summary depth must be an integer >= 1, got {depth!r}")


def summarize(model: nn.Module, plan: list[PlannedNode], spec: Spec, depth: int = 1) -> Summary:
    """Summarise a compiled spec; `depth` >= 2 also lists the modules inside each block.

    Inner shapes and MACs come from forward hooks during one forward pass of a zero sample in
    eval mode; the hooked shape of every layer is checked against the compiler's plan.
    """
    check_depth(depth)
    trace = trace_forward(model, spec.input_shape)
    check_plan_shapes(plan, trace.shapes)
    total, trainable = count_params(model)
    return Summary(
        name=spec.name,
        input_shape=tuple(spec.input_shape),
        output_shape=plan[-1].out_shape if plan else tuple(spec.input_shape),
        depth=depth,
        layers=tuple(layer_rows(model, plan, trace, depth)),
        total_params=total,
        trainable_params=trainable,
        total_macs=sum(trace.macs[name] for name, _ in leaf_modules(model)),
        memory=estimate_memory(spec.input_shape, trace.activation_values, total),
        receptive_field=tuple(receptive_field(plan)),
        peak=peak_activation_memory(model, spec.input_shape, [p.node.name for p in plan]),
    )


def trace_forward(model: nn.Module, input_shape: Shape) -> Trace:
    """Run one zero sample through the model under no_grad in eval mode, recording every
    module's output shape and MACs; each module's training flag is restored afterwards."""
    trace = Trace({}, {})
    modes = {module: module.training for module in model.modules()}
    names = {module: name for name, module in model.named_modules() if name}
    leaves = {module for _, module in leaf_modules(model)}

    returned: list[torch.Tensor] = []  # kept alive so that `is` compares real identities

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        tensor = first_tensor(output)
        if tensor is None:
            return
        name = names[module]
        trace.shapes.setdefault(name, tuple(tensor.shape[1:]))
        if module in leaves:
            trace.macs[name] = trace.macs.get(name, 0) + module_macs(module, tensor)
        if module in leaves or not any(tensor is seen for seen in returned):
            trace.activation_values += tensor[0].numel()
        returned.append(tensor)

    handles = [module.register_forward_hook(hook) for module in names]
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("meta")
    dtype = parameter.dtype if parameter is not None else torch.float32
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    for name, _ in leaf_modules(model):
        trace.macs.setdefault(name, 0)
    return trace


def first_tensor(output: Any) -> torch.Tensor | None:
    """The tensor a module returned, or the first of a tuple/list of them."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next((o for o in output if isinstance(o, torch.Tensor)), None)
    return None


def module_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-adds of one call for the first sample, counted as torchinfo does for the layers
    that dominate the cost: a conv does weight.numel() MACs per output position (the weight
    already holds in_channels / groups), a linear weight.numel() per output row. Everything
    else (BatchNorm, activations, pooling) counts 0: negligible beside them, and counting it
    would make our numbers disagree with the usual tools. A block module that knows its own
    count says so with a `count_macs(output)` method (the per-pixel linear)."""
    counter = getattr(module, "count_macs", None)
    if callable(counter):
        return int(counter(output))
    if isinstance(module, nn.Conv2d):
        return module.weight.numel() * output.shape[-2] * output.shape[-1]
    if isinstance(module, nn.Linear):
        return module.weight.numel() * (output[0].numel() // output.shape[-1])
    return 0


def leaf_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Modules without children: the ones that do the work and that torchsummary hooks."""
    for name, module in model.named_modules():
        if name and next(module.children(), None) is None:
            yield name, module


def count_params(module: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameter counts; shared parameters count once."""
    params = list(module.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def check_plan_shapes(plan: list[PlannedNode], shapes: dict[str, Shape]) -> None:
    """Shape inference and the real forward must agree; a block whose builder declares the
    wrong shape would otherwise mislead every later check."""
    for planned in plan:
        actual = shapes.get(planned.node.name)
        if actual is not None and tuple(actual) != tuple(planned.out_shape):
            raise NetbuilderError(
                f"block '{planned.node.block}' produced shape {list(actual)} but its builder "
                f"declared {list(planned.out_shape)}; fix the shape the builder returns",
                planned.node.location,
                planned.node.where,
            )


def layer_rows(
    model: nn.Module, plan: list[PlannedNode], trace: Trace, depth: int
) -> Iterator[LayerRow]:
    """One row per spec layer, each followed by its inner modules down to `depth`."""
    for planned in plan:
        name = planned.node.name
        module = planned.block.module
        yield module_row(
            name, planned.node.block, module, planned.out_shape, trace, 1, planned.node.inputs
        )
        for inner_name, inner in module.named_modules(prefix=name):
            inner_depth = inner_name.count(".") - name.count(".") + 1  # a dotted layer's too
            if 1 < inner_depth <= depth:
                yield module_row(
                    inner_name,
                    type(inner).__name__,
                    inner,
                    trace.shapes.get(inner_name),
                    trace,
                    inner_depth,
                )


def module_row(
    name: str,
    kind: str,
    module: nn.Module,
    shape: Shape | None,
    trace: Trace,
    depth: int,
    inputs: tuple[str, ...] = (),
) -> LayerRow:
    """A row whose params and MACs cover the module and everything inside it."""
    total, trainable = count_params(module)
    macs = sum(m for leaf, m in trace.macs.items() if leaf == name or leaf.startswith(name + "."))
    return LayerRow(name, kind, shape, total, trainable, macs, depth, inputs)


def estimate_memory(input_shape: Shape, activation_values: int, total_params: int) -> Memory:
    """torchsummary's estimate, for a batch of one, in MiB of float32:
    input = prod(input_shape) * 4 / 1024**2;
    forward/backward = 2 (activations and their gradients) * activation values * 4 / 1024**2;
    params = total_params * 4 / 1024**2; the estimated total is the sum of the three.

    Activation values: every call of a leaf layer counts its output, as torchsummary's hooks
    do (an in-place ReLU included). A block counts its own output only when that is a new
    tensor (Fire's concatenation); a chain such as conv_bn or dw_sep passes its last layer's
    output on and adds nothing. For the built-in blocks this is exactly torchsummary's count."""
    return Memory(
        input=math.prod(input_shape) * BYTES_PER_VALUE / MB,
        forward_backward=2 * activation_values * BYTES_PER_VALUE / MB,
        params=total_params * BYTES_PER_VALUE / MB,
    )


def receptive_field(plan: list[PlannedNode]) -> Iterator[ReceptiveFieldRow]:
    """The classic receptive-field arithmetic along the height, from n = input height, j = 1,
    r = 1, start = 0.5, for every layer fed a feature map (layers after a flat shape are left
    out): r_out = r_in + (k - 1) j_in, j_out = j_in s, start_out = start_in + ((k - 1) / 2 - p)
    j_in, n_out the compiler's height (ceil-mode pools round up) or floor((n + 2p - k) / s) + 1.

    In a graph, a layer continues from the input with the largest receptive field (for a merge
    such as `add`, the largest of its inputs'), and takes that input's jump and start too.
    """
    if not plan or len(plan[0].in_shapes[0]) != 3:
        return
    state = {INPUT: (plan[0].in_shapes[0][1], 1, 1, 0.5)}  # layer -> (n, j, r, start) after it
    for planned in plan:
        known = [state[source] for source in planned.node.inputs if source in state]
        if len(known) < len(planned.node.inputs) or any(
            len(shape) != 3 for shape in planned.in_shapes
        ):
            continue
        n, j, r, start = max(known, key=lambda values: values[2])
        window = planned.block.window
        k, s, p = window.kernel, window.stride, window.padding
        out = planned.out_shape
        n_out = out[1] if len(out) == 3 else (n + 2 * p - k) // s + 1
        row = ReceptiveFieldRow(
            planned.node.name,
            n,
            n_out,
            j,
            j * s,
            r,
            r + (k - 1) * j,
            start,
            start + ((k - 1) / 2 - p) * j,
        )
        state[planned.node.name] = (row.n_out, row.j_out, row.r_out, row.start)
        yield row
