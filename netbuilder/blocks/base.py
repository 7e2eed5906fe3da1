"""Shape arithmetic and small helpers shared by the built-in blocks."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from torch import nn

from ..errors import NetbuilderError
from ..registry import Arg, Shape

Init = Literal["torch", "kaiming_uniform", "kaiming_normal", "small_normal"]
InitArg = Annotated[
    Init,
    Arg("weight initialisation: PyTorch's default, Kaiming (He) uniform/normal with zero bias, "
        "or N(0, 0.01) with zero bias (SqueezeNet's final conv)"),
]
OutChannels = Annotated[int, Arg("output channels", minimum=1, channels=True)]
KernelSize = Annotated[int, Arg("square kernel size", minimum=1)]
Stride = Annotated[int, Arg("stride", minimum=1)]
Padding = Annotated[int, Arg("zero padding on each side", minimum=0)]


def feature_map(in_shape: Shape, block: str) -> tuple[int, int, int]:
    """The (C, H, W) of a feature-map input; a flat input here is a spec mistake."""
    if len(in_shape) != 3:
        raise NetbuilderError(
            f"{block} needs a (channels, height, width) input but gets the flat shape "
            f"{format_shape(in_shape)}; put it before 'gap'/'flatten'"
        )
    return in_shape[0], in_shape[1], in_shape[2]


def output_size(
    size: int, kernel: int, stride: int, padding: int, *, ceil_mode: bool = False
) -> int:
    """PyTorch's conv/pool output length, or a NetbuilderError when nothing would be left."""
    span = size + 2 * padding - kernel
    steps = math.ceil(span / stride) if ceil_mode else span // stride
    out = steps + 1 if span >= 0 else 0
    if ceil_mode and out > 0 and (out - 1) * stride >= size + padding:
        out -= 1  # PyTorch drops a last window that would start in the right padding
    if out < 1:
        raise NetbuilderError(
            f"spatial size collapses: a {kernel}x{kernel} window with stride {stride} and "
            f"padding {padding} does not fit a {size}x{size} input (output would be {out}x{out}); "
            "use a larger input size, padding or fewer downsampling layers"
        )
    return out


def spatial_out(
    in_shape: Shape, kernel: int, stride: int, padding: int, channels: int, block: str,
    *, ceil_mode: bool = False,
) -> Shape:
    _, height, width = feature_map(in_shape, block)
    return (
        channels,
        output_size(height, kernel, stride, padding, ceil_mode=ceil_mode),
        output_size(width, kernel, stride, padding, ceil_mode=ceil_mode),
    )


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    """A grouped conv splits both channel counts into `groups` equal parts."""
    if in_channels % groups or out_channels % groups:
        raise NetbuilderError(
            f"groups {groups} must divide both the input channels ({in_channels}) and "
            f"out_channels ({out_channels})")


def check_pool_padding(kernel_size: int, padding: int) -> None:
    """PyTorch pools pad at most half the window on each side."""
    if 2 * padding > kernel_size:
        raise NetbuilderError(
            f"padding {padding} is more than half the kernel size {kernel_size}; a pool pads "
            f"at most {kernel_size // 2} on each side")


def format_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def initialise(module: nn.Module, init: Init) -> nn.Module:
    """Re-initialise every conv/linear inside `module` (BN keeps its identity default)."""
    if init == "torch":
        return module
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            if init == "kaiming_uniform":
                nn.init.kaiming_uniform_(layer.weight)
            elif init == "kaiming_normal":
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.normal_(layer.weight, mean=0.0, std=0.01)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module
