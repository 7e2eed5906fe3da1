"""Built-in blocks; importing this package registers them."""

from . import conv, fire, layers, pooling

__all__ = ["conv", "fire", "layers", "pooling"]
