"""Reading spec files: safe YAML with the line and column of every value, and `--set` overrides.

No torch here: validating a spec must not need a model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Location, NetbuilderError

PathKey = tuple[str | int, ...]
KEY = "<key>"  # path marker: (*mapping_path, KEY, name) is where the key `name` itself is written


@dataclass
class SpecDocument:
    """Plain data of a spec plus where each value sits in its file."""

    data: Any
    source: str
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: PathKey) -> Location:
        """The position of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.positions:
                line, column = self.positions[path[:end]]
                return Location(self.source, line, column)
        return Location(self.source)

    def locate_key(self, mapping_path: PathKey, key: str) -> Location:
        """Where a key of a mapping is written (for unknown or misspelt keys)."""
        position = self.positions.get((*mapping_path, KEY, key))
        if position is None:
            return self.locate(mapping_path)
        return Location(self.source, *position)


def load_spec(path: str | Path) -> SpecDocument:
    """Read a spec file; every failure becomes a NetbuilderError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NetbuilderError("spec file not found", Location(str(path))) from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as exc:
        raise NetbuilderError(f"cannot read spec file: {exc}", Location(str(path))) from None
    return parse_spec(text, str(path))


def parse_spec(text: str, source: str = "<string>") -> SpecDocument:
    """Parse YAML text with the safe loader, keeping line/column of every node."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise NetbuilderError("the spec is empty; expected a mapping with 'name' and 'layers'",
                                  Location(source, 1, 1))
        _reject_duplicate_keys(node, source)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(source, mark.line + 1, mark.column + 1) if mark else Location(source)
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise NetbuilderError(f"invalid YAML: {problem}", where) from None
    except yaml.YAMLError as exc:
        raise NetbuilderError(f"invalid YAML: {exc}", Location(source)) from None
    finally:
        loader.dispose()
    positions: dict[PathKey, tuple[int, int]] = {}
    _record_positions(node, (), positions)
    return SpecDocument(data, source, positions)


def _record_positions(node: yaml.Node, path: PathKey, out: dict[PathKey, tuple[int, int]]) -> None:
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, KEY, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _record_positions(value_node, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_positions(item, (*path, index), out)


def _reject_duplicate_keys(node: yaml.Node, source: str) -> None:
    """YAML silently keeps the last of two equal keys; in a spec that is always a mistake."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.value in seen:
                mark = key_node.start_mark
                raise NetbuilderError(f"duplicate key '{key_node.value}'",
                                      Location(source, mark.line + 1, mark.column + 1))
            seen.add(key_node.value)
            _reject_duplicate_keys(value_node, source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, source)


def apply_overrides(document: SpecDocument, assignments: list[str]) -> SpecDocument:
    """Return a copy with `a.b.c=value` assignments applied; values are parsed as YAML scalars.

    A list index is a number (`layers.0.conv_bn.out_channels=8`).
    """
    data = copy.deepcopy(document.data)
    for assignment in assignments:
        key, sep, raw_value = assignment.partition("=")
        if not sep or not key.strip():
            raise NetbuilderError(
                f"--set expects KEY=VALUE (e.g. train.epochs=3), got '{assignment}'"
            )
        value = _parse_value(raw_value)
        data = _assign(data, key.strip().split("."), value, assignment)
    return SpecDocument(data, document.source, document.positions)


def _parse_value(raw: str) -> Any:
    """A YAML scalar, with numbers like 1e-3 read as numbers (YAML 1.1 wants 1.0e-3)."""
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _assign(data: Any, keys: list[str], value: Any, assignment: str) -> Any:
    if not isinstance(data, dict):
        data = {} if data is None else data
    node = data
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise NetbuilderError(f"--set {assignment}: '{key}' is not an index of a "
                                      f"list of {len(node)} items")
            index: str | int = int(key)
        elif isinstance(node, dict):
            index = key
        else:
            raise NetbuilderError(f"--set {assignment}: '{'.'.join(keys[:depth])}' is a "
                                  f"{type(node).__name__}, not a mapping")
        if last:
            node[index] = value
        else:
            if isinstance(node, dict) and node.get(index) is None:
                node[index] = {}
            node = node[index]
    return data


@dataclass(frozen=True)
class LayerSpec:
    """One validated layer: a block name, its parameters and where it sits in the file."""

    index: int
    name: str
    block: str
    params: dict[str, Any]
    location: Location


@dataclass(frozen=True)
class Spec:
    """A validated spec, ready for the compiler and the trainer."""

    name: str
    input_shape: tuple[int, int, int]  # (channels, height, width)
    num_classes: int
    width_multiplier: float
    layers: tuple[LayerSpec, ...]
    train: dict[str, Any]
    document: SpecDocument

    @property
    def source(self) -> str:
        return self.document.source


def block_key(layer: dict[str, Any]) -> str | None:
    """The block a layer mapping names (its one key besides 'name')."""
    keys = [k for k in layer if k != "name"]
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
        blocks = [k for k in layer if k != "name"]
        if len(blocks) > 1:
            errors.append(NetbuilderError(
                f"a layer names one block, this one names {len(blocks)}: {', '.join(blocks)}; "
                "put each block in its own list item",
                document.locate(("layers", index)), f"layers[{index}]"))
        if isinstance(name, str) and name in seen:
            errors.append(NetbuilderError(
                f"layer name '{name}' is already used by layers[{seen[name]}]; names must be "
                "unique", document.locate(("layers", index)), f"layers[{index}] ({name})"))
        if isinstance(name, str):
            seen.setdefault(name, index)
    return errors


def interpret(document: SpecDocument) -> Spec:
    """Turn schema-valid data into a Spec (call only after validation passed)."""
    data = document.data
    size = data["input"]["size"]
    height, width = (size, size) if isinstance(size, int) else size
    names = layer_names(data["layers"])
    layers = tuple(
        LayerSpec(index, name, block_key(layer), dict(layer[block_key(layer)] or {}),
                  document.locate(("layers", index)))
        for index, (layer, name) in enumerate(zip(data["layers"], names, strict=True))
    )
    return Spec(
        name=data["name"],
        input_shape=(data["input"]["channels"], height, width),
        num_classes=data["num_classes"],
        width_multiplier=float(data.get("width_multiplier", 1.0)),
        layers=layers,
        train=dict(data.get("train") or {}),
        document=document,
    )
