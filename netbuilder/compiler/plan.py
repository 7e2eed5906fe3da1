"""The compiler's intermediate form: graph nodes before and after shape inference.

Plain data shared by the compiler, the whole-network checks and the summary, so none of them
needs to import another to read a plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import Location
from ..spec.registry import Block, BlockDef, Shape


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
    in_shapes: tuple[Shape, ...]  # one per input, in `node.inputs` order
    block: Block

    @property
    def in_shape(self) -> Shape:
        """The (first) input's shape."""
        return self.in_shapes[0]

    @property
    def out_shape(self) -> Shape:
        return self.block.shape
