"""Non-linearities by name: the `activation:` parameter of conv, conv_bn, dw_sep and linear, and
the stand-alone `activation` and `relu` blocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from torch import nn

from ..spec.registry import Arg, Block, Shape, register

ActivationName = Literal[
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "gelu",
    "silu",
    "hardswish",
    "hardsigmoid",
    "mish",
    "softplus",
    "prelu",
    "sigmoid",
    "tanh",
    "none",
]
ActivationArg = Annotated[ActivationName, Arg("non-linearity ('none' for a linear layer)")]
NegativeSlope = Annotated[float, Arg("slope for negative inputs (leaky_relu only)", minimum=0)]
_FACTORIES: dict[str, Callable[[float], nn.Module]] = {
    "relu": lambda _: nn.ReLU(inplace=True),
    "relu6": lambda _: nn.ReLU6(inplace=True),
    "leaky_relu": lambda slope: nn.LeakyReLU(slope, inplace=True),
    "elu": lambda _: nn.ELU(inplace=True),
    "gelu": lambda _: nn.GELU(),
    "silu": lambda _: nn.SiLU(inplace=True),
    "hardswish": lambda _: nn.Hardswish(inplace=True),
    "hardsigmoid": lambda _: nn.Hardsigmoid(inplace=True),  # MobileNetV3's gate
    "mish": lambda _: nn.Mish(inplace=True),
    "softplus": lambda _: nn.Softplus(),
    "prelu": lambda _: nn.PReLU(),  # one learned slope, PyTorch's default
    "sigmoid": lambda _: nn.Sigmoid(),
    "tanh": lambda _: nn.Tanh(),
}


def activation_layer(name: str, negative_slope: float = 0.01) -> nn.Module | None:
    """The module for `name`; None for 'none'. In-place where PyTorch offers it: the compiler
    turns that off for a layer whose input another layer also reads."""
    return None if name == "none" else _FACTORIES[name](negative_slope)


@register("activation")
def activation(
    in_shape: Shape,
    function: Annotated[ActivationName, Arg("the non-linearity")],
    negative_slope: NegativeSlope = 0.01,
) -> Block:
    """A non-linearity on its own (relu, relu6, leaky_relu, elu, gelu, silu, hardswish,
    hardsigmoid, mish, softplus, prelu, sigmoid, tanh)."""
    return Block(activation_layer(function, negative_slope) or nn.Identity(), in_shape)


@register("relu")
def relu(in_shape: Shape) -> Block:
    """ReLU activation."""
    return Block(nn.ReLU(inplace=True), in_shape)
