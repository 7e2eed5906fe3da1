"""Channel operations: one of equal parts of the channels (`chunk`), and ShuffleNet's
`channel_shuffle` (Zhang et al., 2018, https://arxiv.org/abs/1707.01083)."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from ..errors import NetbuilderError
from ..spec.registry import Arg, Block, Shape, register
from .base import feature_map


class Chunk(nn.Module):
    """The `index`-th of `chunks` equal parts along the channels, as torch.chunk cuts them."""

    def __init__(self, chunks: int, index: int):
        super().__init__()
        self.chunks, self.index = chunks, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.chunk(self.chunks, dim=1)[self.index]

    def extra_repr(self) -> str:
        return f"chunks={self.chunks}, index={self.index}"


class ChannelShuffle(nn.Module):
    """Channels regrouped: (groups, C/groups) read as (C/groups, groups)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        x = x.view(batch, self.groups, channels // self.groups, height, width)
        return x.transpose(1, 2).contiguous().view(batch, channels, height, width)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


@register("chunk")
def chunk(
    in_shape: Shape,
    chunks: Annotated[int, Arg("equal parts the channels are cut into", minimum=1)],
    index: Annotated[int, Arg("which part this layer passes on (0: the first)", minimum=0)],
) -> Block:
    """One of `chunks` equal parts of the channels (ShuffleNetV2's split: two layers reading
    the same input, with index 0 and 1); the map itself is unchanged."""
    channels = feature_map(in_shape, "chunk")[0]
    if channels % chunks:
        raise NetbuilderError(f"{channels} channels do not cut into {chunks} equal parts")
    if index >= chunks:
        raise NetbuilderError(f"index {index} is not one of the {chunks} parts (0 to {chunks - 1})")
    return Block(Chunk(chunks, index), (channels // chunks, *in_shape[1:]))


@register("channel_shuffle")
def channel_shuffle(
    in_shape: Shape,
    groups: Annotated[int, Arg("channel groups to interleave", minimum=1)] = 2,
) -> Block:
    """ShuffleNet's channel shuffle: channels of `groups` groups interleaved, so that the next
    grouped layer mixes them."""
    channels = feature_map(in_shape, "channel_shuffle")[0]
    if channels % groups:
        raise NetbuilderError(f"groups {groups} must divide the {channels} channels")
    return Block(ChannelShuffle(groups), in_shape)
