"""The size limits netbuilder enforces on its inputs, in one place (the README's "Limits").

Each bound is far above any real spec, checkpoint or image, and far below what would hang the
process or exhaust memory: input beyond it is refused with one line, before the work it would
cost. No torch here: the spec loader checks its limits without it.
"""

from __future__ import annotations

MAX_SPEC_BYTES = 256 * 1024  # a hand-written ResNet-152 is ~30 KB; libyaml parses this in ~0.2 s
MAX_YAML_DEPTH = 32  # nesting of mappings/lists; real specs use 5, deep nesting overflows parsers
MAX_YAML_NODES = 100_000  # values once aliases are expanded: a few lines of aliases can mean 10^9
MAX_LAYERS = 5_000  # layers in a spec (ten times ResNet-152's)
MAX_INTEGER = 2**31 - 1  # any integer in a spec; larger ones only overflow torch's C++ sizes
MAX_WEIGHT_BYTES = 2**30  # float32 weights of a model (268M parameters; VGG-16 has 138M)
MAX_ACTIVATION_BYTES = 2**30  # float32 layer outputs for one sample (ResNet-50 at 224: ~0.1 GB)
MAX_IMAGE_PIXELS = 2**24  # pixels of an image given to `predict` (a 4096x4096 photo)
BYTES_PER_VALUE = 4  # float32


def megabytes(count: int) -> str:
    """A byte count in the units the messages use (MiB, as torchsummary's 'MB')."""
    return f"{count / 2**20:,.1f} MB"
