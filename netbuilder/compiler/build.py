"""Spec -> nn.Module: nodes, shapes, checks, assembly (`shapes`, `checks`, `assemble`).

Every spec is first planned on the meta device, where modules have shapes but no storage: the
whole-network checks and the size limits cost no memory, and a refused spec never allocates its
weights. Only a caller that needs real weights pays for a second, real build. Layers read only
earlier layers, so a graph is acyclic by construction.
"""

from __future__ import annotations

import torch
from torch import nn

from ..spec.registry import BLOCKS, BlockDef, Registry
from ..spec.types import Spec
from .assemble import assemble
from .checks import check_plan, plan_bytes
from .plan import Node, PlannedNode
from .shapes import infer_shapes, to_nodes

META = torch.device("meta")
SMALL_MODEL_BYTES = 64 * 2**20  # summarised with real tensors: ResNet-18's weights and outputs


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


def compile_for_summary(
    spec: Spec, registry: Registry[BlockDef] = BLOCKS
) -> tuple[nn.Module, list[PlannedNode]]:
    """The model the summary traces: real (and fast) when small, on the meta device when its
    weights and one image's outputs pass SMALL_MODEL_BYTES. A meta forward needs no memory,
    but some of its ops (torch.cat) import torch's compiler, seconds of start-up."""
    nodes, plan = checked_plan(spec, registry)
    if sum(plan_bytes(plan, spec.input_shape)) <= SMALL_MODEL_BYTES:
        plan = infer_shapes(nodes, spec.input_shape, spec, registry, None)
    return assemble(spec.name, plan), plan


def checked_plan(
    spec: Spec, registry: Registry[BlockDef] = BLOCKS
) -> tuple[list[Node], list[PlannedNode]]:
    """The spec's nodes and their plan on the meta device, after the whole-network checks."""
    nodes = to_nodes(spec)
    plan = infer_shapes(nodes, spec.input_shape, spec, registry, META)
    check_plan(
        plan,
        spec.input_shape,
        spec.num_classes,
        spec.train.batch_size,
        spec.document.locate(("train", "batch_size")),
    )
    return nodes, plan


def build_model(spec: Spec, registry: Registry[BlockDef] = BLOCKS) -> nn.Module:
    """The model with real, initialised weights (after the meta-device checks)."""
    return compile_spec(spec, registry)[0]
