"""The exponential moving average of the weights (`train.ema`), warmed up.

A plain EMA with decay 0.999 still holds about e^-1 of the random initial weights after 1,000
steps: a one-epoch run of model5 (469 steps) tested its average at 11%. Here the decay after n
updates is min(decay, (1 + n) / (10 + n)), as timm's ModelEmaV3 and TensorFlow's
`num_updates` do: the average follows the weights closely early on, then settles to `decay`.
BatchNorm statistics are averaged too (`use_buffers`); integer buffers (BatchNorm's batch
count) are copied, since averaging a count means nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

WARMUP = 10  # the n at which the decay is 1/2 ... (1 + n) / (WARMUP + n)

Tensors = tuple[Tensor, ...] | list[Tensor]
AverageFn = Callable[[Tensors, Tensors, Tensor | int], None]


def warmup_decay(decay: float, updates: Tensor | int) -> Tensor:
    """The decay for the update after `updates` earlier ones, as a tensor on their device (no
    host sync per training step)."""
    n = torch.as_tensor(updates).to(torch.float32)
    return torch.clamp((1 + n) / (WARMUP + n), max=decay)


def warmed_up_average(decay: float) -> AverageFn:
    @torch.no_grad()
    def update(averaged: Tensors, current: Tensors, updates: Tensor | int) -> None:
        if torch.is_floating_point(averaged[0]):
            weight = 1 - warmup_decay(decay, updates)
            torch._foreach_lerp_(averaged, current, weight)  # type: ignore[call-overload]
        else:
            torch._foreach_copy_(averaged, current)

    return update


def weight_average(model: nn.Module, decay: float) -> AveragedModel:
    """An AveragedModel of `model` whose update warms up (see the module docstring)."""
    return AveragedModel(model, multi_avg_fn=warmed_up_average(decay), use_buffers=True)
