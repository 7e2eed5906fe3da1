"""Scoring a model from what its head outputs (`compiler.heads`): the loss, class
probabilities, and a whole split's loss, accuracy and confusion matrix. Used by training and by
`eval`/`predict` alike.

The loss is cross-entropy whatever the head: on raw logits it is what it says, and on
log-probabilities it is the same number, because log_softmax is idempotent
(log_softmax(log_softmax(x)) = log_softmax(x)); label smoothing included. A softmax head is
refused for training: the log of its probabilities underflows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..compiler.heads import Head
from ..data.loader import BatchLoader
from ..errors import NetbuilderError
from .device import autocast, prepare
from .distributed import Cluster, all_sum


def make_loss(head: Head, label_smoothing: float = 0.0) -> nn.Module:
    """Cross-entropy on the model's output (logits or log-probabilities)."""
    if head == "probabilities":
        raise NetbuilderError(
            "the model ends in softmax, which cannot be trained stably (the log of its "
            "probabilities underflows); end it with log_softmax, or with the raw logits"
        )
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


def to_probabilities(head: Head, output: Tensor) -> Tensor:
    """Class probabilities from whatever the head outputs (softmax of logits or log-probs)."""
    if head == "probabilities":
        return output.float()
    return output.float().softmax(dim=1)


@dataclass(frozen=True)
class EvalStats:
    loss: float
    accuracy: float
    confusion: Tensor  # (classes, classes) counts; rows true, columns predicted

    @property
    def per_class_accuracy(self) -> list[float]:
        totals = self.confusion.sum(dim=1).clamp(min=1)
        return (self.confusion.diag().double() / totals).tolist()


@torch.inference_mode()  # no autograd graph, no version counters: a test pass costs what it must
def evaluate_model(
    model: nn.Module,
    loader: BatchLoader,
    num_classes: int,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    cluster: Cluster | None = None,
) -> EvalStats:
    """Mean loss, accuracy and confusion matrix over a whole split, synced once at the end;
    with several ranks, each scores its share and the sums are added up."""
    model.eval()
    device = loader.device
    loss_fn = nn.CrossEntropyLoss()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
    for x, y in loader.batches(0):
        if len(y) == 0:
            continue
        with autocast(device, amp_dtype):
            output = model(prepare(x, channels_last))
        loss_sum += loss_fn(output.float(), y).double() * len(y)
        confusion += torch.bincount(
            y * num_classes + output.argmax(dim=1), minlength=num_classes * num_classes
        )
    if cluster is not None:
        loss_sum, confusion = all_sum(loss_sum, cluster), all_sum(confusion, cluster)
    confusion = confusion.view(num_classes, num_classes).cpu()
    seen = max(1, int(confusion.sum()))
    return EvalStats(float(loss_sum) / seen, int(confusion.diag().sum()) / seen, confusion)
