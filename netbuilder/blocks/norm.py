"""Normalisation and scaling on channels: `layer_norm` (ConvNeXt's LayerNorm2d on feature maps,
nn.LayerNorm on flat features) and `layer_scale` (a learned per-channel factor, Touvron et al.,
2021, https://arxiv.org/abs/2103.17239)."""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from ..spec.registry import Arg, Block, Shape, register


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each position of a (N, C, H, W) map: torchvision's
    convnext.LayerNorm2d, so weights [C] and bias [C] load across."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """x times a learned per-channel factor (shape (C, 1, 1) on maps, as ConvNeXt's)."""

    def __init__(self, shape: tuple[int, ...], init: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full(shape, init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x


@register("layer_norm")
def layer_norm(
    in_shape: Shape,
    eps: Annotated[float, Arg("added to the variance for stability", exclusive_minimum=0)] = 1e-5,
) -> Block:
    """Layer normalisation over the channels: of each position of a feature map (ConvNeXt's
    LayerNorm2d), or of flat features."""
    norm = LayerNorm2d if len(in_shape) == 3 else nn.LayerNorm
    return Block(norm(in_shape[0], eps=eps), in_shape)


@register("layer_scale")
def layer_scale(
    in_shape: Shape,
    init: Annotated[float, Arg("the factor's first value (ConvNeXt: 1e-6)")] = 1e-6,
) -> Block:
    """A learned factor per channel (ConvNeXt's layer scale), applied before a residual add."""
    shape = (in_shape[0], 1, 1) if len(in_shape) == 3 else (in_shape[0],)
    return Block(LayerScale(shape, init), in_shape)
