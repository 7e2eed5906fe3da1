"""Squeeze-and-excitation (Hu et al., 2018, https://arxiv.org/abs/1709.01507): a per-channel
gate computed from the whole map, as MobileNetV3, EfficientNet and RegNetY use it."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from torch import nn

from ..spec.registry import Arg, Block, Shape, register
from .activations import ActivationArg, activation_layer
from .base import feature_map

Gate = Literal["sigmoid", "hardsigmoid"]


class SqueezeExcite(nn.Module):
    """Global average pool, 1x1 conv down to `squeeze` channels, activation, 1x1 conv back up,
    gate, times the input. Submodule names are torchvision's (`ops.SqueezeExcitation`), so
    its weights load by name."""

    def __init__(self, channels: int, squeeze: int, activation: nn.Module, gate: nn.Module):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = activation
        self.scale_activation = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale: torch.Tensor = self.scale_activation(
            self.fc2(self.activation(self.fc1(self.avgpool(x))))
        )
        return scale * x


@register("squeeze_excite")
def squeeze_excite(
    in_shape: Shape,
    squeeze_channels: Annotated[
        int, Arg("channels of the bottleneck between the two 1x1 convs", minimum=1)
    ],
    activation: ActivationArg = "relu",
    gate: Annotated[Gate, Arg("the gate: sigmoid, or MobileNetV3's hardsigmoid")] = "sigmoid",
) -> Block:
    """Squeeze-and-excitation: each channel scaled by a gate computed from the whole map (its
    receptive field is counted as the identity's, as in every summary tool)."""
    channels = feature_map(in_shape, "squeeze_excite")[0]
    inner = activation_layer(activation) or nn.Identity()
    gate_layer = activation_layer(gate)
    assert gate_layer is not None  # sigmoid or hardsigmoid
    if isinstance(inner, nn.ReLU):
        inner.inplace = False  # as torchvision's
    return Block(SqueezeExcite(channels, squeeze_channels, inner, gate_layer), in_shape)
