"""Convolution blocks: plain conv, conv+BN+activation, depthwise-separable, and linear."""

from __future__ import annotations

from collections import OrderedDict
from typing import Annotated, Literal

from torch import nn

from ..errors import NetbuilderError
from ..spec.registry import Arg, Block, Shape, format_shape, register
from .activations import ActivationArg, NegativeSlope, activation_layer
from .base import (
    Dilation,
    Geometry,
    InitArg,
    KernelSize,
    OutChannels,
    Padding,
    Stride,
    check_groups,
    feature_map,
    initialise,
)
from .layers import Dropout

DropoutArg = Annotated[
    float, Arg("dropout probability after the block (0 = none)", minimum=0, exclusive_maximum=1)
]
Groups = Annotated[int, Arg("channel groups (in and out channels must divide)", minimum=1)]
BnEps = Annotated[float, Arg("BatchNorm: added to the variance for stability", exclusive_minimum=0)]
BnMomentum = Annotated[float, Arg("BatchNorm: running-statistics momentum", minimum=0, maximum=1)]


def named_sequential(
    cls: type[nn.Sequential], layers: list[tuple[str, nn.Module | None]]
) -> nn.Sequential:
    """A Sequential of the named layers that are present (None marks an optional one left out)."""
    return cls(OrderedDict((name, layer) for name, layer in layers if layer is not None))


class ConvAct(nn.Sequential):
    """A convolution followed by its activation."""


class ConvBN(nn.Sequential):
    """Conv, BatchNorm and activation in a chosen order, optionally followed by dropout."""


class DepthwiseSeparable(nn.Sequential):
    """MobileNet's depthwise k x k conv + BN + act, then pointwise 1x1 conv + BN + act."""


class LinearAct(nn.Sequential):
    """A fully connected layer followed by its activation."""


@register("conv")
def conv(
    in_shape: Shape,
    out_channels: OutChannels,
    kernel_size: KernelSize = 3,
    stride: Stride = 1,
    padding: Padding = 0,
    dilation: Dilation = 1,
    groups: Groups = 1,
    bias: Annotated[bool, Arg("learn an additive bias")] = True,
    activation: ActivationArg = "none",
    negative_slope: NegativeSlope = 0.01,
    init: InitArg = "torch",
) -> Block:
    """A 2-D convolution (nn.Conv2d), optionally followed by an activation."""
    channels = feature_map(in_shape, "conv")[0]
    check_groups(channels, out_channels, groups)
    geometry = Geometry.of(kernel_size, stride, padding, dilation)
    module: nn.Module = nn.Conv2d(
        channels,
        out_channels,
        geometry.kernel,
        geometry.stride,
        geometry.padding,
        geometry.dilation,
        groups=groups,
        bias=bias,
    )
    act = activation_layer(activation, negative_slope)
    if act is not None:
        module = ConvAct(OrderedDict([("conv", module), ("act", act)]))
    return Block(
        initialise(module, init),
        geometry.out_shape(in_shape, out_channels, "conv"),
        geometry.window(),
    )


@register("conv_bn")
def conv_bn(
    in_shape: Shape,
    out_channels: OutChannels,
    kernel_size: KernelSize = 3,
    stride: Stride = 1,
    padding: Padding = 0,
    dilation: Dilation = 1,
    groups: Groups = 1,
    bias: Annotated[bool, Arg("learn a conv bias (redundant before BatchNorm)")] = False,
    order: Annotated[
        Literal["conv_bn_act", "conv_act_bn"],
        Arg("where the activation goes: after BatchNorm (usual) or before it"),
    ] = "conv_bn_act",
    activation: ActivationArg = "relu",
    negative_slope: NegativeSlope = 0.01,
    bn_eps: BnEps = 1e-5,
    bn_momentum: BnMomentum = 0.1,
    dropout: DropoutArg = 0.0,
    init: InitArg = "torch",
) -> Block:
    """Conv2d + BatchNorm2d + activation (+ dropout), the workhorse of small GAP nets."""
    channels = feature_map(in_shape, "conv_bn")[0]
    check_groups(channels, out_channels, groups)
    geometry = Geometry.of(kernel_size, stride, padding, dilation)
    layers: list[tuple[str, nn.Module | None]] = [
        (
            "conv",
            nn.Conv2d(
                channels,
                out_channels,
                geometry.kernel,
                geometry.stride,
                geometry.padding,
                geometry.dilation,
                groups=groups,
                bias=bias,
            ),
        ),
    ]
    norm_and_act = [
        ("bn", nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)),
        ("act", activation_layer(activation, negative_slope)),
    ]
    layers += norm_and_act if order == "conv_bn_act" else norm_and_act[::-1]
    layers.append(("dropout", Dropout(dropout) if dropout > 0 else None))
    return Block(
        initialise(named_sequential(ConvBN, layers), init),
        geometry.out_shape(in_shape, out_channels, "conv_bn"),
        geometry.window(),
    )


@register("dw_sep")
def dw_sep(
    in_shape: Shape,
    out_channels: OutChannels,
    stride: Stride = 1,
    kernel_size: KernelSize = 3,
    padding: Padding = "same",
    dilation: Dilation = 1,
    depth_multiplier: Annotated[int, Arg("depthwise outputs per input channel", minimum=1)] = 1,
    activation: ActivationArg = "relu",
    negative_slope: NegativeSlope = 0.01,
    init: InitArg = "torch",
) -> Block:
    """Depthwise-separable conv (MobileNet V1): per-channel k x k, then 1x1 across channels."""
    channels = feature_map(in_shape, "dw_sep")[0]
    depthwise = channels * depth_multiplier
    geometry = Geometry.of(kernel_size, stride, padding, dilation)
    layers: list[tuple[str, nn.Module | None]] = [
        (
            "depthwise",
            nn.Conv2d(
                channels,
                depthwise,
                geometry.kernel,
                geometry.stride,
                geometry.padding,
                geometry.dilation,
                groups=channels,
                bias=False,
            ),
        ),
        ("bn1", nn.BatchNorm2d(depthwise)),
        ("act1", activation_layer(activation, negative_slope)),
        ("pointwise", nn.Conv2d(depthwise, out_channels, 1, bias=False)),
        ("bn2", nn.BatchNorm2d(out_channels)),
        ("act2", activation_layer(activation, negative_slope)),
    ]
    return Block(
        initialise(named_sequential(DepthwiseSeparable, layers), init),
        geometry.out_shape(in_shape, out_channels, "dw_sep"),
        geometry.window(),
    )


@register("bn")
def bn(
    in_shape: Shape,
    eps: Annotated[float, Arg("added to the variance for stability", exclusive_minimum=0)] = 1e-5,
    momentum: Annotated[float, Arg("running-statistics momentum", minimum=0, maximum=1)] = 0.1,
) -> Block:
    """BatchNorm over channels (BatchNorm2d on feature maps, BatchNorm1d once flat)."""
    norm = nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d
    return Block(norm(in_shape[0], eps=eps, momentum=momentum), in_shape)


@register("linear")
def linear(
    in_shape: Shape,
    out_features: Annotated[int, Arg("output features", minimum=1, channels=True)],
    bias: Annotated[bool, Arg("learn an additive bias")] = True,
    activation: ActivationArg = "none",
    negative_slope: NegativeSlope = 0.01,
    init: InitArg = "torch",
) -> Block:
    """Fully connected layer on a flat input (after 'gap' or 'flatten')."""
    if len(in_shape) != 1:
        raise NetbuilderError(
            f"linear needs a flat input but gets {format_shape(in_shape)}; "
            "put 'gap' or 'flatten' before it"
        )
    module: nn.Module = nn.Linear(in_shape[0], out_features, bias=bias)
    act = activation_layer(activation, negative_slope)
    if act is not None:
        module = LinearAct(OrderedDict([("linear", module), ("act", act)]))
    return Block(initialise(module, init), (out_features,))
