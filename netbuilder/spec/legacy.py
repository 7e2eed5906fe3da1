"""Spec formats: the `netbuilder: N` version key, and keys of earlier releases still read the
way they were meant, each with a note that names the form replacing it: an old spec keeps
building the same network. No torch here.

    width_multiplier: 0.5      # (until 0.1) every channel parameter x 0.5, rounded down
    ->  params: {width: 0.5}   # and out_channels: "${int(64 * width)}" where it is meant
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import Location, NetbuilderError, Note, excerpt
from .expansion import Output
from .registry import BLOCKS, BlockDef, Registry
from .types import block_key

WIDTH_MULTIPLIER = "width_multiplier"


def read_width_multiplier(out: Output, registry: Registry[BlockDef] = BLOCKS) -> list[Note]:
    """Scale the layers' channel parameters as `width_multiplier` did: max(1, int(value * w))
    for each one written as a number (`num_classes` stays); the key itself goes."""
    if WIDTH_MULTIPLIER not in out.data:
        return []
    where = out.positions.get((WIDTH_MULTIPLIER,))
    factor = out.data.pop(WIDTH_MULTIPLIER)
    if (
        isinstance(factor, bool)
        or not isinstance(factor, (int, float))
        or not (math.isfinite(factor) and factor > 0)
    ):
        raise NetbuilderError(
            f"expected a number > 0, got {excerpt(factor)}", where, WIDTH_MULTIPLIER
        )
    if out.data.get("blocks"):
        raise NetbuilderError(
            "width_multiplier scales plain layers only, not the layers of macros (blocks:); "
            "declare `params: {width: ...}` and use ${...} where channels scale",
            where,
            WIDTH_MULTIPLIER,
        )
    layers = out.data.get("layers")
    for layer in layers if isinstance(layers, list) else []:
        block = block_key(layer) if isinstance(layer, dict) else None
        if block is not None and block in registry and isinstance(layer[block], dict):
            layer[block] = scaled(layer[block], registry.get(block), factor)
    return [
        Note(
            f"width_multiplier is deprecated (it scaled every channel parameter by "
            f"{factor:g}, as it still does here); declare `params: {{width: {factor:g}}}` "
            "and write the channels that scale as ${int(64 * width)}",
            where or out.positions.get(()) or Location(),
        )
    ]


def scaled(params: dict[str, Any], block: BlockDef, factor: float) -> dict[str, Any]:
    channels = {param.name for param in block.params if param.arg.channels}
    return {
        key: max(1, int(value * factor))
        if key in channels and isinstance(value, int) and not isinstance(value, bool)
        else value
        for key, value in params.items()
    }


FORMAT_KEY = "netbuilder"  # `netbuilder: 1` at the top of a spec: the format it is written in
FORMAT = 1  # this release's spec format
READABLE_FORMATS = (1,)  # the formats this release reads; an older one is read with a note


def read_format(out: Output) -> list[Note]:
    """Check the spec's format version (absent: the current one) and drop the key: the
    resolved spec is in this release's format."""
    if FORMAT_KEY not in out.data:
        return []
    where = out.positions.get((FORMAT_KEY,))
    version = out.data.pop(FORMAT_KEY)
    if isinstance(version, bool) or version not in READABLE_FORMATS:
        readable = ", ".join(map(str, READABLE_FORMATS))
        raise NetbuilderError(
            f"spec format {excerpt(version)} is not one this release of netbuilder reads; it "
            f"reads format {readable} (the current one is {FORMAT}, see CHANGELOG.md)",
            where,
            FORMAT_KEY,
        )
    if version != FORMAT:  # kept readable for a release after it changes
        return [
            Note(
                f"spec format {version} is read as format {FORMAT}; see CHANGELOG.md",
                where or Location(),
            )
        ]
    return []
