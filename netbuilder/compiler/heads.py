"""What a network's output means, decided once from its plan: `logits`, `log-probabilities` or
`probabilities`. The whole-network checks (a head applied twice), the loss (a softmax head
cannot be trained), the probabilities of eval and predict, and the export metadata all ask here.

A layer's output is what its probability head made of it: softmax gives probabilities,
log_softmax log-probabilities, and blocks that pass their input's meaning on (dropout, flatten)
keep what they read. Macros are expanded in the plan, so a macro ending in log_softmax counts.
"""

from __future__ import annotations

from typing import Literal

from .plan import PlannedNode

Head = Literal["logits", "log-probabilities", "probabilities"]
HEADS: dict[str, Head] = {"softmax": "probabilities", "log_softmax": "log-probabilities"}
PASSIVE_BLOCKS = ("dropout", "dropout2d", "flatten")  # they pass on what their input means


def head_kinds(plan: list[PlannedNode]) -> dict[str, tuple[Head, PlannedNode | None]]:
    """For each layer, what its output is and the head layer that made it so (None: logits)."""
    kinds: dict[str, tuple[Head, PlannedNode | None]] = {}
    for planned in plan:
        node = planned.node
        if node.block in HEADS:
            kinds[node.name] = (HEADS[node.block], planned)
        elif node.block in PASSIVE_BLOCKS and len(node.inputs) == 1:
            kinds[node.name] = kinds.get(node.inputs[0], ("logits", None))
        else:
            kinds[node.name] = ("logits", None)
    return kinds


def output_kind(plan: list[PlannedNode]) -> Head:
    """What the model outputs: its last layer's kind."""
    if not plan:
        return "logits"
    return head_kinds(plan)[plan[-1].node.name][0]
