"""Merge blocks: they read several layers (`from: [a, b]`) and give one output."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import NetbuilderError
from ..spec.registry import Block, Shape, format_shape, register


class Add(nn.Module):
    """Element-wise sum of same-shaped inputs (a residual connection)."""

    def forward(self, *inputs: Tensor) -> Tensor:
        total = inputs[0]
        for tensor in inputs[1:]:
            total = total + tensor
        return total


class Concat(nn.Module):
    """Concatenation along the channels (dim 1)."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.cat(inputs, dim=1)


def _describe(inputs: dict[str, Shape]) -> str:
    return ", ".join(f"{name} gives {format_shape(shape)}" for name, shape in inputs.items())


@register("add", merge=True)
def add(inputs: dict[str, Shape]) -> Block:
    """Sum of two or more layers of the same shape (residual connections); a projection of the
    shortcut, where shapes differ, is a layer of its own (e.g. a 1x1 conv_bn)."""
    shapes = set(inputs.values())
    if len(shapes) > 1:
        raise NetbuilderError(
            f"add needs inputs of one shape: {_describe(inputs)}; project "
            "one of them (e.g. a 1x1 conv_bn with the other's channels and "
            "stride)"
        )
    return Block(Add(), next(iter(shapes)))


@register("concat", merge=True)
def concat(inputs: dict[str, Shape]) -> Block:
    """Two or more layers joined along the channels (feature maps of one height and width, or
    flat vectors)."""
    shapes = list(inputs.values())
    ranks = {len(shape) for shape in shapes}
    if len(ranks) > 1 or len({shape[1:] for shape in shapes}) > 1:
        raise NetbuilderError(
            f"concat needs inputs that differ only in channels: {_describe(inputs)}"
        )
    return Block(Concat(), (sum(shape[0] for shape in shapes), *shapes[0][1:]))


class Mul(nn.Module):
    """Element-wise product, broadcasting dims of size 1 (a (C, 1, 1) gate times a map)."""

    def forward(self, *inputs: Tensor) -> Tensor:
        product = inputs[0]
        for tensor in inputs[1:]:
            product = product * tensor
        return product


@register("mul", merge=True)
def mul(inputs: dict[str, Shape]) -> Block:
    """Product of two or more layers, broadcasting as PyTorch does: each dim of the inputs is
    equal or 1 (a squeeze-and-excitation gate of C x 1 x 1 times a C x H x W map)."""
    shapes = list(inputs.values())
    if len({len(shape) for shape in shapes}) > 1:
        raise NetbuilderError(f"mul needs inputs of one rank: {_describe(inputs)}")
    out = []
    for sizes in zip(*shapes, strict=True):
        wider = {size for size in sizes if size != 1}
        if len(wider) > 1:
            raise NetbuilderError(f"mul needs each dim equal or 1: {_describe(inputs)}")
        out.append(wider.pop() if wider else 1)
    return Block(Mul(), tuple(out))
