"""Pooling blocks: windowed max/average pooling, global average and max pooling, adaptive
average pooling to a fixed size."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from ..spec.registry import Arg, Block, Shape, Window, register
from .base import Geometry, KernelSize, Padding, check_pool_padding, feature_map, pair

PoolStride = Annotated[
    int | tuple[int, int] | None,
    Arg("stride: n or [height, width] (default: the kernel size)", minimum=1),
]
CeilMode = Annotated[bool, Arg("round the output size up, as SqueezeNet's pools do")]


def pool(
    kind: type[nn.MaxPool2d | nn.AvgPool2d],
    in_shape: Shape,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None,
    padding: int | tuple[int, int] | str,
    ceil_mode: bool,
) -> Block:
    name = "maxpool" if kind is nn.MaxPool2d else "avgpool"
    geometry = Geometry.of(kernel_size, stride or kernel_size, padding)
    check_pool_padding(geometry)
    return Block(
        kind(geometry.kernel, geometry.stride, geometry.padding, ceil_mode=ceil_mode),
        geometry.out_shape(in_shape, in_shape[0], name, ceil_mode=ceil_mode),
        geometry.window(),
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


class GlobalMaxPool(nn.Module):
    """Maximum over height and width, returning (N, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3))


@register("gap")
def gap(in_shape: Shape) -> Block:
    """Global average pooling to one value per channel, output flattened to (N, C)."""
    channels, height, _ = feature_map(in_shape, "gap")
    return Block(GlobalAvgPool(), (channels,), Window(height, 1, 0))


@register("global_maxpool")
def global_maxpool(in_shape: Shape) -> Block:
    """Global max pooling to one value per channel, output flattened to (N, C)."""
    channels, height, _ = feature_map(in_shape, "global_maxpool")
    return Block(GlobalMaxPool(), (channels,), Window(height, 1, 0))


@register("adaptive_avgpool")
def adaptive_avgpool(
    in_shape: Shape,
    size: Annotated[
        int | tuple[int, int], Arg("output size: n, or [height, width]", minimum=1)
    ] = 1,
) -> Block:
    """Average pooling to a fixed output size (nn.AdaptiveAvgPool2d), whatever the input's."""
    channels, height, _ = feature_map(in_shape, "adaptive_avgpool")
    out = pair(size)
    # the receptive field grows by the largest bin along the height
    return Block(
        nn.AdaptiveAvgPool2d(out),
        (channels, *out),
        Window(-(-height // out[0]), max(1, height // out[0]), 0),
    )
