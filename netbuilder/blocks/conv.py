"""Convolution blocks: plain conv, conv+BN+activation, depthwise-separable."""

from __future__ import annotations

from collections import OrderedDict
from typing import Annotated, Literal

from torch import nn

from ..registry import Arg, Block, Shape, Window, register
from .base import (
    InitArg,
    KernelSize,
    OutChannels,
    Padding,
    Stride,
    check_groups,
    feature_map,
    initialise,
    spatial_out,
)
from .layers import Dropout

Activation = Literal["relu", "relu6", "none"]
ActivationArg = Annotated[Activation, Arg("non-linearity after the normalisation")]
DropoutArg = Annotated[
    float, Arg("dropout probability after the block (0 = none)", minimum=0, exclusive_maximum=1)
]


def activation_layer(name: Activation) -> nn.Module | None:
    return {"relu": nn.ReLU(inplace=True), "relu6": nn.ReLU6(inplace=True), "none": None}[name]


def named_sequential(
    cls: type[nn.Sequential], layers: list[tuple[str, nn.Module | None]]
) -> nn.Sequential:
    """A Sequential of the named layers that are present (None marks an optional one left out)."""
    return cls(OrderedDict((name, layer) for name, layer in layers if layer is not None))


class ConvBN(nn.Sequential):
    """Conv, BatchNorm and activation in a chosen order, optionally followed by dropout."""


class DepthwiseSeparable(nn.Sequential):
    """MobileNet's depthwise 3x3 conv + BN + act, then pointwise 1x1 conv + BN + act."""


@register("conv")
def conv(
    in_shape: Shape,
    out_channels: OutChannels,
    kernel_size: KernelSize = 3,
    stride: Stride = 1,
    padding: Padding = 0,
    groups: Annotated[int, Arg("channel groups (in and out channels must divide)", minimum=1)] = 1,
    bias: Annotated[bool, Arg("learn an additive bias")] = True,
    init: InitArg = "torch",
) -> Block:
    """A 2-D convolution (nn.Conv2d) with no normalisation or activation."""
    channels = feature_map(in_shape, "conv")[0]
    check_groups(channels, out_channels, groups)
    module = nn.Conv2d(channels, out_channels, kernel_size, stride, padding, groups=groups,
                       bias=bias)
    return Block(
        initialise(module, init),
        spatial_out(in_shape, kernel_size, stride, padding, out_channels, "conv"),
        Window(kernel_size, stride, padding),
    )


@register("conv_bn")
def conv_bn(
    in_shape: Shape,
    out_channels: OutChannels,
    kernel_size: KernelSize = 3,
    stride: Stride = 1,
    padding: Padding = 0,
    bias: Annotated[bool, Arg("learn a conv bias (redundant before BatchNorm)")] = False,
    order: Annotated[
        Literal["conv_bn_act", "conv_act_bn"],
        Arg("where the activation goes: after BatchNorm (usual) or before it"),
    ] = "conv_bn_act",
    activation: ActivationArg = "relu",
    dropout: DropoutArg = 0.0,
    init: InitArg = "torch",
) -> Block:
    """Conv2d + BatchNorm2d + activation (+ dropout), the workhorse of small GAP nets."""
    channels = feature_map(in_shape, "conv_bn")[0]
    layers: list[tuple[str, nn.Module | None]] = [
        ("conv", nn.Conv2d(channels, out_channels, kernel_size, stride, padding, bias=bias)),
    ]
    norm_and_act = [("bn", nn.BatchNorm2d(out_channels)), ("act", activation_layer(activation))]
    layers += norm_and_act if order == "conv_bn_act" else norm_and_act[::-1]
    layers.append(("dropout", Dropout(dropout) if dropout > 0 else None))
    module = named_sequential(ConvBN, layers)
    return Block(
        initialise(module, init),
        spatial_out(in_shape, kernel_size, stride, padding, out_channels, "conv_bn"),
        Window(kernel_size, stride, padding),
    )


@register("dw_sep")
def dw_sep(
    in_shape: Shape,
    out_channels: OutChannels,
    stride: Stride = 1,
    kernel_size: KernelSize = 3,
    activation: ActivationArg = "relu",
    init: InitArg = "torch",
) -> Block:
    """Depthwise-separable conv (MobileNet V1): per-channel k x k, then 1x1 across channels."""
    channels = feature_map(in_shape, "dw_sep")[0]
    padding = kernel_size // 2
    layers: list[tuple[str, nn.Module | None]] = [
        ("depthwise", nn.Conv2d(channels, channels, kernel_size, stride, padding,
                                groups=channels, bias=False)),
        ("bn1", nn.BatchNorm2d(channels)),
        ("act1", activation_layer(activation)),
        ("pointwise", nn.Conv2d(channels, out_channels, 1, bias=False)),
        ("bn2", nn.BatchNorm2d(out_channels)),
        ("act2", activation_layer(activation)),
    ]
    module = named_sequential(DepthwiseSeparable, layers)
    return Block(
        initialise(module, init),
        spatial_out(in_shape, kernel_size, stride, padding, out_channels, "dw_sep"),
        Window(kernel_size, stride, padding),
    )


@register("bn")
def bn(
    in_shape: Shape,
    eps: Annotated[float, Arg("added to the variance for stability", minimum=0)] = 1e-5,
    momentum: Annotated[float, Arg("running-statistics momentum", minimum=0, maximum=1)] = 0.1,
) -> Block:
    """BatchNorm over channels (BatchNorm2d on feature maps, BatchNorm1d once flat)."""
    norm = nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d
    return Block(norm(in_shape[0], eps=eps, momentum=momentum), in_shape)
