"""Pooling blocks: windowed max/average pooling and global average pooling."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from ..registry import Arg, Block, Shape, Window, register
from .base import KernelSize, Padding, check_pool_padding, feature_map, spatial_out

PoolStride = Annotated[int | None, Arg("stride (default: the kernel size)", minimum=1)]
CeilMode = Annotated[bool, Arg("round the output size up, as SqueezeNet's pools do")]


def pool(
    kind: type[nn.MaxPool2d | nn.AvgPool2d], in_shape: Shape, kernel_size: int,
    stride: int | None, padding: int, ceil_mode: bool,
) -> Block:
    step = stride or kernel_size
    check_pool_padding(kernel_size, padding)
    name = "maxpool" if kind is nn.MaxPool2d else "avgpool"
    return Block(
        kind(kernel_size, step, padding, ceil_mode=ceil_mode),
        spatial_out(in_shape, kernel_size, step, padding, in_shape[0], name, ceil_mode=ceil_mode),
        Window(kernel_size, step, padding),
    )


@register("maxpool")
def maxpool(
    in_shape: Shape,
    kernel_size: KernelSize = 2,
    stride: PoolStride = None,
    padding: Padding = 0,
    ceil_mode: CeilMode = False,
) -> Block:
    """Max pooling (nn.MaxPool2d)."""
    return pool(nn.MaxPool2d, in_shape, kernel_size, stride, padding, ceil_mode)


@register("avgpool")
def avgpool(
    in_shape: Shape,
    kernel_size: KernelSize = 2,
    stride: PoolStride = None,
    padding: Padding = 0,
    ceil_mode: CeilMode = False,
) -> Block:
    """Average pooling (nn.AvgPool2d)."""
    return pool(nn.AvgPool2d, in_shape, kernel_size, stride, padding, ceil_mode)


class GlobalAvgPool(nn.Module):
    """Mean over height and width, returning (N, C): GAP replaces the flatten + FC head."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@register("gap")
def gap(in_shape: Shape) -> Block:
    """Global average pooling to one value per channel, output flattened to (N, C)."""
    channels, height, width = feature_map(in_shape, "gap")
    return Block(GlobalAvgPool(), (channels,), Window(max(height, width), 1, 0))
