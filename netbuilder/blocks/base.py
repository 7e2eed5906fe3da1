"""Shape arithmetic, parameter declarations and small helpers shared by the built-in blocks.

Kernel, stride, padding and dilation may each be one number or [height, width]; padding may
also say 'same' (odd kernels) or 'valid'. `Geometry` resolves them once per block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from torch import nn

from ..errors import NetbuilderError
from ..spec.registry import Arg, Shape, Window, format_shape

Init = Literal[
    "torch", "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal", "small_normal"
]
InitArg = Annotated[
    Init,
    Arg(
        "weight initialisation: PyTorch's default, Kaiming (He) or Xavier (Glorot) uniform or "
        "normal with zero bias, or N(0, 0.01) with zero bias (SqueezeNet's final conv)"
    ),
]
OutChannels = Annotated[int, Arg("output channels", minimum=1, channels=True)]
Pair = tuple[int, int]
KernelSize = Annotated[int | tuple[int, int], Arg("kernel size: n, or [height, width]", minimum=1)]
Stride = Annotated[int | tuple[int, int], Arg("stride: n, or [height, width]", minimum=1)]
Padding = Annotated[
    int | tuple[int, int] | Literal["same", "valid"],
    Arg(
        "zero padding on each side: n, [height, width], 'same' (odd kernels; the output keeps "
        "ceil(size / stride)) or 'valid' (none)",
        minimum=0,
    ),
]
Dilation = Annotated[
    int | tuple[int, int], Arg("spacing between kernel taps: n, or [height, width]", minimum=1)
]


def pair(value: int | Sequence[int]) -> Pair:
    """n -> (n, n); [h, w] -> (h, w)."""
    if isinstance(value, int):
        return value, value
    height, width = value
    return int(height), int(width)


@dataclass(frozen=True)
class Geometry:
    """A sliding window's kernel, stride, padding and dilation as (height, width) pairs."""

    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair = (1, 1)

    @classmethod
    def of(
        cls,
        kernel: int | Sequence[int],
        stride: int | Sequence[int],
        padding: int | Sequence[int] | str,
        dilation: int | Sequence[int] = 1,
    ) -> Geometry:
        kernel, dilation = pair(kernel), pair(dilation)
        return cls(kernel, pair(stride), resolve_padding(padding, kernel, dilation), dilation)

    @property
    def span(self) -> Pair:
        """The input extent one output position sees: dilation * (kernel - 1) + 1."""
        (kh, kw), (dh, dw) = self.kernel, self.dilation
        return dh * (kh - 1) + 1, dw * (kw - 1) + 1

    def window(self) -> Window:
        """The window along the height, and along the width where that differs."""
        return Window(
            self.span[0],
            self.stride[0],
            self.padding[0],
            self.span[1],
            self.stride[1],
            self.padding[1],
        )

    def out_shape(
        self, in_shape: Shape, channels: int, block: str, *, ceil_mode: bool = False
    ) -> Shape:
        """(channels, H, W) after the window, or a NetbuilderError when nothing would be left."""
        _, height, width = feature_map(in_shape, block)
        sizes = [
            output_size(n, k, s, p, ceil_mode=ceil_mode)
            for n, k, s, p in zip(
                (height, width), self.span, self.stride, self.padding, strict=True
            )
        ]
        if min(sizes) < 1:
            raise NetbuilderError(
                f"spatial size collapses: a {_pair_text(self.span)} window with stride "
                f"{_pair_text(self.stride, ', ')} and padding {_pair_text(self.padding, ', ')} "
                f"does not fit a {height}x{width} input (output would be "
                f"{max(0, sizes[0])}x{max(0, sizes[1])}); use a larger input size, padding or "
                "fewer downsampling layers"
            )
        return (channels, *sizes)


def _pair_text(values: Pair, joiner: str = "x") -> str:
    """3x3 for a square window, 3x1 otherwise; a stride or padding as 2 or (2, 1)."""
    if values[0] == values[1]:
        return f"{values[0]}x{values[1]}" if joiner == "x" else str(values[0])
    return f"{values[0]}x{values[1]}" if joiner == "x" else f"({values[0]}, {values[1]})"


def resolve_padding(padding: int | Sequence[int] | str, kernel: Pair, dilation: Pair) -> Pair:
    """'valid' is no padding; 'same' pads (span - 1) / 2 on each side, which needs odd spans."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
        if any(span % 2 == 0 for span in spans):
            raise NetbuilderError(
                f"padding 'same' needs an odd kernel, got {kernel[0]}x{kernel[1]}; an even one "
                "would need more padding on one side than the other: give padding as numbers"
            )
        return spans[0] // 2, spans[1] // 2
    if isinstance(padding, str):
        raise NetbuilderError(
            f"padding must be a number, [height, width], 'same' or 'valid'; got {padding!r}"
        )
    return pair(padding)


def feature_map(in_shape: Shape, block: str) -> tuple[int, int, int]:
    """The (C, H, W) of a feature-map input; a flat input here is a spec mistake."""
    if len(in_shape) != 3:
        raise NetbuilderError(
            f"{block} needs a (channels, height, width) input but gets the flat shape "
            f"{format_shape(in_shape)}; put it before 'gap'/'flatten'"
        )
    return in_shape[0], in_shape[1], in_shape[2]


def output_size(size: int, span: int, stride: int, padding: int, *, ceil_mode: bool = False) -> int:
    """PyTorch's conv/pool output length, below 1 when the window does not fit: floor((size +
    2p - span) / stride) + 1; a ceil-mode pool rounds up (so a window larger than its input
    still gives one output, as GoogLeNet's pools rely on), less one where the last window
    would start in the right padding."""
    extent = size + 2 * padding - span
    if not ceil_mode:
        return extent // stride + 1
    out = -(-extent // stride) + 1
    return out - 1 if (out - 1) * stride >= size + padding else out


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    """A grouped conv splits both channel counts into `groups` equal parts."""
    if in_channels % groups or out_channels % groups:
        raise NetbuilderError(
            f"groups {groups} must divide both the input channels ({in_channels}) and "
            f"out_channels ({out_channels})"
        )


def check_pool_padding(geometry: Geometry) -> None:
    """PyTorch pools pad at most half the window on each side."""
    for kernel, padding in zip(geometry.kernel, geometry.padding, strict=True):
        if 2 * padding > kernel:
            raise NetbuilderError(
                f"padding {padding} is more than half the kernel size {kernel}; a pool pads "
                f"at most {kernel // 2} on each side"
            )


def initialise(module: nn.Module, init: Init) -> nn.Module:
    """Re-initialise every conv/linear inside `module` (BN keeps its identity default). A model
    planned on the meta device has no values to set (and torch's normal_ there would import
    its compiler, seconds of start-up), so it is left alone."""
    if init == "torch" or any(p.is_meta for p in module.parameters()):
        return module
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            if init == "kaiming_uniform":
                nn.init.kaiming_uniform_(layer.weight)
            elif init == "kaiming_normal":
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            elif init == "xavier_uniform":
                nn.init.xavier_uniform_(layer.weight)
            elif init == "xavier_normal":
                nn.init.xavier_normal_(layer.weight)
            else:
                nn.init.normal_(layer.weight, mean=0.0, std=0.01)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module
