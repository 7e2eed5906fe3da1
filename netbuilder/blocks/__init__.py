"""Built-in blocks; importing this package registers them."""

from . import activations, channels, conv, excite, fire, layers, merge, norm, pooling

__all__ = [
    "activations",
    "channels",
    "conv",
    "excite",
    "fire",
    "layers",
    "merge",
    "norm",
    "pooling",
]
