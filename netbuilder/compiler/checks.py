"""Checks of a whole planned network that no single block can make: the model ends in one score
per class, a softmax head is not applied twice, its weights and layer outputs fit the limits,
and its BatchNorm layers can train at the spec's batch size. The compiler runs them on a plan
built on the meta device, so a refused spec never allocates a tensor.
"""

from __future__ import annotations

import math

from torch import nn

from ..errors import Location, NetbuilderError, raise_if_any
from ..limits import BYTES_PER_VALUE, MAX_ACTIVATION_BYTES, MAX_WEIGHT_BYTES, megabytes
from ..spec.registry import Shape, format_shape
from .heads import HEADS, head_kinds
from .plan import PlannedNode


def check_plan(
    plan: list[PlannedNode],
    input_shape: Shape,
    num_classes: int,
    batch_size: int | None = None,
    batch_where: Location | None = None,
) -> None:
    """Every problem of the network as a whole, raised together; `batch_size` (the training
    batch, located at `batch_where`) is checked against the BatchNorm layers when given."""
    raise_if_any(
        [
            *unused_errors(plan),
            *head_errors(plan),
            *output_errors(plan, num_classes),
            *size_errors(plan, input_shape),
            *(batchnorm_errors(plan, batch_size, batch_where) if batch_size else []),
        ]
    )


def batchnorm_errors(
    plan: list[PlannedNode], batch_size: int, where: Location | None = None
) -> list[NetbuilderError]:
    """BatchNorm in training normalises each channel over the batch and the map: on a 1x1 map
    (or a flat input) one image gives one value per channel, which it cannot normalise, so
    such a layer needs two images per batch at least."""
    for planned in plan:
        shape = planned.out_shape
        values = math.prod(shape[1:]) if len(shape) == 3 else 1
        if batch_size * values >= 2 or not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in planned.block.module.modules()
        ):
            continue
        seen = f"a {format_shape(shape[1:])} map" if len(shape) == 3 else "flat features"
        return [
            NetbuilderError(
                f"a batch of {batch_size} cannot train layer '{planned.node.name}' "
                f"({planned.node.block}): its BatchNorm sees {seen}, one value per channel, "
                "which it cannot normalise; use a batch of 2 or more",
                where,
                "train.batch_size",
            )
        ]
    return []


def unused_errors(plan: list[PlannedNode]) -> list[NetbuilderError]:
    """A layer nobody reads (and that is not the output) is a branch left hanging."""
    read = {source for planned in plan for source in planned.node.inputs}
    return [
        NetbuilderError(
            f"the output of '{planned.node.name}' is never used; the model's "
            "output is the last layer's, so connect it with `from:` or remove it",
            planned.node.location,
            planned.node.where,
        )
        for planned in plan[:-1]
        if planned.node.name not in read
    ]


def head_errors(plan: list[PlannedNode]) -> list[NetbuilderError]:
    """softmax or log_softmax applied to what already is (log-)probabilities."""
    kinds = head_kinds(plan)
    errors = []
    for planned in plan:
        node = planned.node
        if node.block not in HEADS or len(node.inputs) != 1:
            continue
        _, head = kinds.get(node.inputs[0], ("logits", None))
        if head is not None:
            errors.append(
                NetbuilderError(
                    f"{node.block} after {head.node.block} '{head.node.name}': its input "
                    "already is (log-)probabilities; keep one of them",
                    node.location,
                    node.where,
                )
            )
    return errors


def output_errors(plan: list[PlannedNode], num_classes: int) -> list[NetbuilderError]:
    """A classifier outputs one score per class: the last shape must be (num_classes,)."""
    if not plan or tuple(plan[-1].out_shape) == (num_classes,):
        return []
    last = plan[-1]
    shape = format_shape(last.out_shape)
    hint = (
        "reduce the feature map first (e.g. `gap`)"
        if len(last.out_shape) == 3
        else "make the last layer produce num_classes outputs (e.g. `out_channels: num_classes`)"
    )
    return [
        NetbuilderError(
            f"the model outputs {shape} values per image but num_classes is {num_classes}; {hint}",
            last.node.location,
            last.node.where,
        )
    ]


def plan_bytes(plan: list[PlannedNode], input_shape: Shape) -> tuple[int, int]:
    """(weights, one sample's input and layer outputs) in bytes of float32."""
    weights = {id(p): p.numel() for planned in plan for p in planned.block.module.parameters()}
    values = math.prod(input_shape) + sum(math.prod(p.out_shape) for p in plan)
    return sum(weights.values()) * BYTES_PER_VALUE, values * BYTES_PER_VALUE


def size_errors(plan: list[PlannedNode], input_shape: Shape) -> list[NetbuilderError]:
    """Weights and one sample's layer outputs as float32, against the limits."""
    errors = []
    weight_bytes, activation_bytes = plan_bytes(plan, input_shape)
    if weight_bytes > MAX_WEIGHT_BYTES and plan:
        largest = max(plan, key=lambda p: sum(w.numel() for w in p.block.module.parameters()))
        errors.append(
            NetbuilderError(
                f"the model has {weight_bytes // BYTES_PER_VALUE:,} parameters, "
                f"{megabytes(weight_bytes)} as float32; the limit is "
                f"{megabytes(MAX_WEIGHT_BYTES)} (the largest layer is this one)",
                largest.node.location,
                largest.node.where,
            )
        )
    if activation_bytes > MAX_ACTIVATION_BYTES:
        biggest = max(plan, key=lambda p: math.prod(p.out_shape)) if plan else None
        message = (
            f"one image's layer outputs take {megabytes(activation_bytes)} as "
            f"float32; the limit is {megabytes(MAX_ACTIVATION_BYTES)}"
        )
        if biggest is None or math.prod(input_shape) >= math.prod(biggest.out_shape):
            errors.append(
                NetbuilderError(f"{message} (the input alone is {format_shape(input_shape)})")
            )
        else:
            errors.append(
                NetbuilderError(
                    f"{message} (the biggest output is this layer's, "
                    f"{format_shape(biggest.out_shape)})",
                    biggest.node.location,
                    biggest.node.where,
                )
            )
    return errors
