"""SqueezeNet's Fire module (Iandola et al., 2016, https://arxiv.org/abs/1602.07360)."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from ..spec.registry import Arg, Block, Shape, Window, register
from .base import InitArg, feature_map, initialise


class Fire(nn.Module):
    """Squeeze with 1x1 convs, then expand with parallel 1x1 and 3x3 convs, concatenated.

    Submodule names follow torchvision's so weights load across with `load_state_dict`.
    """

    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [
                self.expand1x1_activation(self.expand1x1(x)),
                self.expand3x3_activation(self.expand3x3(x)),
            ],
            dim=1,
        )


@register("fire")
def fire(
    in_shape: Shape,
    squeeze: Annotated[int, Arg("channels of the 1x1 squeeze conv", minimum=1, channels=True)],
    expand1x1: Annotated[int, Arg("1x1 expand channels", minimum=1, channels=True)],
    expand3x3: Annotated[int, Arg("3x3 expand channels", minimum=1, channels=True)],
    init: InitArg = "torch",
) -> Block:
    """SqueezeNet Fire module; outputs expand1x1 + expand3x3 channels at the same size."""
    channels, height, width = feature_map(in_shape, "fire")
    module = Fire(channels, squeeze, expand1x1, expand3x3)
    return Block(initialise(module, init), (expand1x1 + expand3x3, height, width), Window(3, 1, 1))
