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
MAX_EXPANSION = 4 * MAX_LAYERS  # layer instances repeat, sequences, macros and inserts may make,
# those a `when` then drops included: the language's work is bounded before anything is built
MAX_EXPRESSION_VALUE = 10**18  # any number inside a ${...}, intermediate results included
MAX_ROUND_DIGITS = 30  # round(x, n): |n| at most this (round(1, -10**9) would never finish)
MAX_INPUT_SIZES = 32  # `build --input-size` values in one command
MAX_INTEGER = 2**31 - 1  # any integer in a spec; larger ones only overflow torch's C++ sizes
MAX_WEIGHT_BYTES = 2**30  # float32 weights of a model (268M parameters; VGG-16 has 138M)
MAX_ACTIVATION_BYTES = 2**30  # float32 layer outputs for one sample (ResNet-50 at 224: ~0.1 GB)
MAX_IMAGE_PIXELS = 2**24  # pixels of an image given to `predict` (a 4096x4096 photo)
MAX_CHECKPOINT_BYTES = 5 * 2**30 + 2**26  # a checkpoint's members, inflated: weights, their
# average, the trained copy and Adam's two moments at the weight limit, plus the records
MAX_MESSAGE_CHARS = 500  # one error message; a value in it is quoted as a short excerpt
MAX_EXCERPT_CHARS = 60  # a quoted value (a string, a list, a file read as YAML)
MAX_ERRORS_SHOWN = 50  # errors listed at once; the rest are counted
BYTES_PER_VALUE = 4  # float32


def megabytes(count: int) -> str:
    """A byte count in the units the messages use (MiB, as torchsummary's 'MB')."""
    return f"{count / 2**20:,.1f} MB"
