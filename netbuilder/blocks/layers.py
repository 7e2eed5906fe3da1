"""Shape-keeping layers and heads: dropout, stochastic depth, flatten, (log-)softmax, and the
per-pixel linear layer."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from torch import Tensor, nn
from torchvision.ops import StochasticDepth

from ..errors import NetbuilderError
from ..spec.registry import Arg, Block, Shape, format_shape, register

DRAWS = 2**16  # distinct values of one 16-bit draw


class Dropout(nn.Dropout):
    """nn.Dropout with a faster CPU mask. PyTorch draws one random number per element
    (`bernoulli_`, or `rand_like` + compare), and that draw dominated the CPU training step of
    the small GAP nets; here 64-bit random words are split into 16-bit draws, a quarter of the
    generator calls (`make bench` shows the step time).
    The drop probability is p rounded to a multiple of 1/65536 and the scale uses that rounded
    value, so the expectation stays exact. On GPUs PyTorch's fused kernel is used unchanged."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or x.is_cuda:
            return super().forward(x)
        dropped = round(self.p * DRAWS)
        words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64, device=x.device)
        draws = words.random_(-(2**63), 2**63 - 1).view(torch.int16)[: x.numel()]
        keep = draws.view(x.shape).ge(dropped - DRAWS // 2)  # draws are uniform in [-2^15, 2^15)
        return x * keep.to(x.dtype).mul_(DRAWS / (DRAWS - dropped))


@register("dropout")
def dropout(
    in_shape: Shape,
    p: Annotated[
        float, Arg("probability of zeroing an element", minimum=0, exclusive_maximum=1)
    ] = 0.5,
) -> Block:
    """Dropout (nn.Dropout), active in training only."""
    return Block(Dropout(p), in_shape)


@register("dropout2d")
def dropout2d(
    in_shape: Shape,
    p: Annotated[
        float, Arg("probability of zeroing a whole channel", minimum=0, exclusive_maximum=1)
    ] = 0.1,
) -> Block:
    """Channel dropout (nn.Dropout2d): zeroes whole feature maps, active in training only."""
    if len(in_shape) != 3:
        raise NetbuilderError(
            f"dropout2d drops channels of a feature map; this input is flat "
            f"({format_shape(in_shape)}): use dropout"
        )
    return Block(nn.Dropout2d(p), in_shape)


@register("flatten")
def flatten(in_shape: Shape) -> Block:
    """Flatten (C, H, W) to (C*H*W,) before a linear layer."""
    return Block(nn.Flatten(), (math.prod(in_shape),))


@register("softmax")
def softmax(in_shape: Shape) -> Block:
    """Softmax over classes (dim 1): outputs probabilities."""
    return Block(nn.Softmax(dim=1), in_shape)


@register("log_softmax")
def log_softmax(in_shape: Shape) -> Block:
    """Log-softmax over classes (dim 1): pairs with NLL loss, as the seed GAP nets do."""
    return Block(nn.LogSoftmax(dim=1), in_shape)


class PixelLinear(nn.Linear):
    """nn.Linear on the channels of every position of a (N, C, H, W) map: ConvNeXt's pointwise
    layers, which torchvision writes as Linear on channels-last (weights [out, in], where a
    1x1 conv would hold [out, in, 1, 1])."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def count_macs(self, output: Tensor) -> int:
        """weight.numel() per position of the first sample's map."""
        return self.weight.numel() * output.shape[-2] * output.shape[-1]


@register("pixel_linear")
def pixel_linear(
    in_shape: Shape,
    out_features: Annotated[int, Arg("output channels", minimum=1, channels=True)],
    bias: Annotated[bool, Arg("learn an additive bias")] = True,
) -> Block:
    """A linear layer on each position's channels of a feature map (ConvNeXt's pointwise MLP,
    with torchvision's state_dict shapes); the same arithmetic as a 1x1 conv."""
    if len(in_shape) != 3:
        raise NetbuilderError(
            f"pixel_linear works on a feature map, this input is flat "
            f"({format_shape(in_shape)}): use linear"
        )
    return Block(PixelLinear(in_shape[0], out_features, bias=bias), (out_features, *in_shape[1:]))


@register("stochastic_depth")
def stochastic_depth(
    in_shape: Shape,
    p: Annotated[
        float,
        Arg(
            "probability of dropping a sample's whole branch in training (a "
            "params expression can ramp it per block)",
            minimum=0,
            exclusive_maximum=1,
        ),
    ] = 0.0,
    mode: Annotated[
        Literal["row", "batch"], Arg("drop per sample (row) or the whole batch")
    ] = "row",
) -> Block:
    """Stochastic depth (Huang et al., 2016): in training, a residual branch is zeroed with
    probability p and scaled by 1/(1-p) otherwise; the identity in evaluation."""
    return Block(StochasticDepth(p, mode), in_shape)
