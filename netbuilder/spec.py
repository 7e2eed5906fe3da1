"""From a spec document to a Spec: `--set` overrides, layer names, and the validated Spec the
compiler and the trainer read. No torch here: validating a spec must not need a model.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from .document import PathKey, SpecDocument, load_yaml
from .errors import Location, NetbuilderError
from .training.config import TrainConfig

_DECIMAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")  # 1e-3: text to YAML 1.1


def apply_overrides(document: SpecDocument, assignments: list[str]) -> SpecDocument:
    """Return a copy with `a.b.c=value` assignments applied; values are parsed as YAML.

    A list index is a number (`layers.0.conv_bn.out_channels=8`). Errors about a value set
    here name its `--set` argument instead of a line of the file.
    """
    data = copy.deepcopy(document.data)
    overrides = dict(document.overrides)
    for assignment in assignments:
        key, sep, raw_value = assignment.partition("=")
        if not sep or not key.strip():
            raise NetbuilderError(
                f"--set expects KEY=VALUE (e.g. train.epochs=3), got '{assignment}'"
            )
        value = _parse_value(raw_value, assignment)
        data, path = _assign(data, key.strip().split("."), value, assignment)
        overrides = {p: a for p, a in overrides.items() if p[:len(path)] != path}
        overrides[path] = assignment
    return SpecDocument(data, document.source, document.positions, overrides, document.notes)


def _parse_value(raw: str, assignment: str) -> Any:
    """YAML, with numbers like 1e-3 read as numbers (YAML 1.1 wants 1.0e-3)."""
    if not raw.strip():
        return ""
    try:
        _, value = load_yaml(raw, f"--set {assignment}")
    except NetbuilderError as error:
        if "invalid YAML" not in error.message:
            raise
        return raw
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return float(value)
    return value


def _list_index(items: list[Any], keys: list[str], assignment: str) -> tuple[int, int]:
    """(position, keys used) in a list: a number, or a layer name (`layers.fire2.squeeze=32`);
    a name may contain dots (`layers.stage.1.conv1.stride=2`): the longest match wins."""
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    for used in range(len(keys), 0, -1):
        if ".".join(keys[:used]) in names:
            return names.index(".".join(keys[:used])), used
    if keys[0].isdigit() and int(keys[0]) < len(items):
        return int(keys[0]), 1
    raise NetbuilderError(f"--set {assignment}: '{keys[0]}' is neither an index nor a layer "
                          f"name of a list of {len(items)} items")


def _assign(data: Any, keys: list[str], value: Any, assignment: str) -> tuple[Any, PathKey]:
    """`data` with `value` at `keys`, and the path it was written to (list indices as ints)."""
    if not isinstance(data, dict):
        data = {} if data is None else data
    node, path, position = data, [], 0
    while position < len(keys):
        if isinstance(node, list):
            index, used = _list_index(node, keys[position:], assignment)
        elif isinstance(node, dict):
            index, used = keys[position], 1
        else:
            raise NetbuilderError(f"--set {assignment}: '{'.'.join(keys[:position])}' is a "
                                  f"{type(node).__name__}, not a mapping")
        path.append(index)
        position += used
        if position == len(keys):
            node[index] = value
        else:
            if isinstance(node, dict) and node.get(index) is None:
                node[index] = {}
            node = node[index]
    return data, tuple(path)


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

    @property
    def source(self) -> str:
        return self.document.source


LAYER_KEYS = ("name", "from")  # what a layer may say besides its block
INPUT = "input"  # the model's input, as `from:` names it


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
            errors.append(NetbuilderError(
                "this layer names no block; expected one block name, e.g. '- relu: {}'",
                document.locate(("layers", index)), f"layers[{index}]"))
        if len(blocks) > 1:
            errors.append(NetbuilderError(
                f"a layer names one block, this one names {len(blocks)}: {', '.join(blocks)}; "
                "put each block in its own list item",
                document.locate(("layers", index)), f"layers[{index}]"))
        if name == INPUT:
            errors.append(NetbuilderError(
                f"'{INPUT}' names the model's input in `from:`; choose another layer name",
                document.locate(("layers", index, "name")), f"layers[{index}]"))
        if isinstance(name, str) and name in seen:
            errors.append(NetbuilderError(
                f"layer name '{name}' is already used by layers[{seen[name]}]; names must be "
                "unique", document.locate(("layers", index)), f"layers[{index}] ({name})"))
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
        LayerSpec(index, name, block_key(layer), dict(layer[block_key(layer)] or {}),
                  document.locate(("layers", index)), _sources(layer.get("from")),
                  document.locate(("layers", index, "from")))
        for index, (layer, name) in enumerate(zip(data["layers"], names, strict=True))
    )
    return Spec(
        name=data["name"],
        input_shape=(data["input"]["channels"], height, width),
        num_classes=data["num_classes"],
        layers=layers,
        train=TrainConfig.from_data(data.get("train")),
        document=document,
        macros={name: Macro(name, dict(macro.get("params") or {}), list(macro["layers"]),
                            document, ("blocks", name))
                for name, macro in (data.get("blocks") or {}).items()},
    )
