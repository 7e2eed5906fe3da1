"""Built-in blocks; importing this package registers them."""

from . import activations, conv, fire, layers, merge, pooling

__all__ = ["activations", "conv", "fire", "layers", "merge", "pooling"]
