"""A compiled plan written back as a plain spec: `build --resolved`.

The result is a valid spec file with nothing left to resolve (no `extends`, `params`,
expressions, `repeat` or macros): one layer per built block, with the name it was given (a
macro's or group's layers keep their dotted names, so the same modules and state_dict keys come
out) and `from:` wherever a layer reads anything but the layer above it.
"""

from __future__ import annotations

from typing import Any

from ..spec.sources import INPUT
from ..spec.types import Spec
from .plan import PlannedNode


def plain_spec(spec: Spec, plan: list[PlannedNode]) -> dict[str, Any]:
    data: dict[str, Any] = {"name": spec.name}
    if isinstance(spec.document.data.get("description"), str):
        data["description"] = spec.document.data["description"]
    channels, height, width = spec.input_shape
    data["input"] = {"channels": channels, "size": height if height == width else [height, width]}
    data["num_classes"] = spec.num_classes
    data["layers"] = [
        plain_layer(planned, previous)
        for planned, previous in zip(plan, [INPUT, *(p.node.name for p in plan)], strict=False)
    ]
    data["train"] = spec.train.to_dict()
    if spec.requires.to_dict() != {"over_last_epochs": 1}:  # budgets travel with the network
        data["requires"] = spec.requires.to_dict()
    return data


def plain_layer(planned: PlannedNode, previous: str) -> dict[str, Any]:
    node = planned.node
    layer: dict[str, Any] = {node.block: dict(node.params), "name": node.name}
    if node.inputs != (previous,):
        layer["from"] = node.inputs[0] if len(node.inputs) == 1 else list(node.inputs)
    return layer
