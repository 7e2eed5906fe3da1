"""The validated Spec the compiler and the trainer read, its layers and macros, and the rules
of layer names. No torch here: validating a spec must not need a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Location, NetbuilderError
from .config import TrainConfig
from .document import PathKey, SpecDocument
from .requires import Requirements
from .search import Dimension, search_space
from .sources import INPUT


@dataclass(frozen=True)
class LayerSpec:
    """One validated layer: a block name, its parameters and where it sits in the file."""

    index: int
    name: str
    block: str
    params: dict[str, Any]
    location: Location
    sources: tuple[str | int, ...] | None = None  # `from:` as written; None: the previous layer
    sources_location: Location | None = None


@dataclass(frozen=True)
class Macro:
    """A spec's own block, made of other blocks (its `blocks:` section); the compiler expands
    it where it is used, once its input's shape is known."""

    name: str
    params: dict[str, Any]  # defaults; None marks a required parameter
    layers: list[Any]  # items as written: ${...} expressions over its parameters stay
    document: SpecDocument  # where to locate errors in its body
    path: PathKey  # ("blocks", name)


@dataclass(frozen=True)
class Spec:
    """A validated spec, ready for the compiler and the trainer."""

    name: str
    input_shape: tuple[int, int, int]  # (channels, height, width)
    num_classes: int
    layers: tuple[LayerSpec, ...]
    train: TrainConfig
    document: SpecDocument
    macros: dict[str, Macro] = field(default_factory=dict)
    index_base: int = 1  # how the repeats inside macros are numbered
    requires: Requirements = field(default_factory=Requirements)
    search: tuple[Dimension, ...] = ()  # the space `netbuilder search` explores

    @property
    def source(self) -> str:
        return self.document.source


LAYER_KEYS = ("name", "from")  # what a layer may say besides its block


def block_key(layer: dict[str, Any]) -> str | None:
    """The block a layer mapping names (its one key besides 'name' and 'from')."""
    keys = [k for k in layer if k not in LAYER_KEYS]
    return keys[0] if len(keys) == 1 else None


def layer_names(layers: list[Any]) -> list[str | None]:
    """Each layer's name: the one written in the spec, or the block name plus a running number
    per block type among the unnamed layers (conv_bn1, conv_bn2, maxpool1, ...)."""
    counts: dict[str, int] = {}
    names: list[str | None] = []
    for layer in layers:
        block = block_key(layer) if isinstance(layer, dict) else None
        if block is None:
            names.append(layer.get("name") if isinstance(layer, dict) else None)
            continue
        if isinstance(layer.get("name"), str):
            names.append(layer["name"])
            continue
        counts[block] = counts.get(block, 0) + 1
        names.append(f"{block}{counts[block]}")
    return names


def layer_name_at(data: Any, index: int) -> str | None:
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list) or index >= len(layers):
        return None
    name = layer_names(layers)[index]
    return name if isinstance(name, str) else None


def check_layers(document: SpecDocument) -> list[NetbuilderError]:
    """What the schema cannot say: one block per layer, unique layer names."""
    layers = document.data.get("layers") if isinstance(document.data, dict) else None
    if not isinstance(layers, list):
        return []
    errors = []
    seen: dict[str, int] = {}
    for index, (layer, name) in enumerate(zip(layers, layer_names(layers), strict=True)):
        if not isinstance(layer, dict):
            continue
        blocks = [k for k in layer if k not in LAYER_KEYS]
        if not blocks and layer:
            errors.append(
                NetbuilderError(
                    "this layer names no block; expected one block name, e.g. '- relu: {}'",
                    document.locate(("layers", index)),
                    f"layers[{index}]",
                )
            )
        if len(blocks) > 1:
            errors.append(
                NetbuilderError(
                    f"a layer names one block, this one names {len(blocks)}: {', '.join(blocks)}; "
                    "put each block in its own list item",
                    document.locate(("layers", index)),
                    f"layers[{index}]",
                )
            )
        if name == INPUT:
            errors.append(
                NetbuilderError(
                    f"'{INPUT}' names the model's input in `from:`; choose another layer name",
                    document.locate(("layers", index, "name")),
                    f"layers[{index}]",
                )
            )
        if isinstance(name, str) and name in seen:
            errors.append(
                NetbuilderError(
                    f"layer name '{name}' is already used by layers[{seen[name]}]; names must be "
                    "unique",
                    document.locate(("layers", index)),
                    f"layers[{index}] ({name})",
                )
            )
        if isinstance(name, str):
            seen.setdefault(name, index)
    return errors


def _sources(value: Any) -> tuple[str | int, ...] | None:
    """`from:` as written: a name, a relative index, or a list of them; None: the previous."""
    if value is None:
        return None
    return tuple(value) if isinstance(value, list) else (value,)


def interpret(document: SpecDocument) -> Spec:
    """Turn schema-valid data into a Spec (call only after validation passed)."""
    data = document.data
    size = data["input"]["size"]
    height, width = (size, size) if isinstance(size, int) else size
    names = layer_names(data["layers"])
    layers = tuple(
        LayerSpec(
            index,
            str(name),
            str(block_key(layer)),
            dict(layer[block_key(layer)] or {}),
            document.locate(("layers", index)),
            _sources(layer.get("from")),
            document.locate(("layers", index, "from")),
        )
        for index, (layer, name) in enumerate(zip(data["layers"], names, strict=True))
    )
    return Spec(
        name=data["name"],
        input_shape=(data["input"]["channels"], height, width),
        num_classes=data["num_classes"],
        layers=layers,
        train=TrainConfig.from_data(data.get("train")),
        document=document,
        macros={
            name: Macro(
                name,
                dict(macro.get("params") or {}),
                list(macro["layers"]),
                document,
                ("blocks", name),
            )
            for name, macro in (data.get("blocks") or {}).items()
        },
        index_base=data.get("index_base", 1),
        requires=Requirements.from_data(data.get("requires")),
        search=search_space(data.get("search")),
    )
