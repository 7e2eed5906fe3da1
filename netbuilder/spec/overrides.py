"""`--set KEY=VALUE` overrides: a value written into the spec's data at a dotted path, where a
list may be indexed by number or by layer name, and where errors name the argument instead of a
line of the file. No torch here."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from ..errors import NetbuilderError
from .document import PathKey, SpecDocument, load_yaml


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
        overrides = {p: a for p, a in overrides.items() if p[: len(path)] != path}
        overrides[path] = assignment
    return SpecDocument(
        data, document.source, document.positions, overrides, document.expressions, document.notes
    )


def assignment(path: str, value: object) -> str:
    """`path=value` as `--set` text that reads back as the same value (`params.lr=0.05`)."""
    return f"{path}={yaml.safe_dump(value, default_flow_style=True).splitlines()[0]}"


def _parse_value(raw: str, assignment: str) -> Any:
    """The value as a spec file would read it (YAML, `1e-3` a number); unparsable: the text."""
    if not raw.strip():
        return ""
    try:
        _, value = load_yaml(raw, f"--set {assignment}")
    except NetbuilderError as error:
        if "invalid YAML" not in error.message:
            raise
        return raw
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
    raise NetbuilderError(
        f"--set {assignment}: '{keys[0]}' is neither an index nor a layer "
        f"name of a list of {len(items)} items"
    )


def _assign(data: Any, keys: list[str], value: Any, assignment: str) -> tuple[Any, PathKey]:
    """`data` with `value` at `keys`, and the path it was written to (list indices as ints)."""
    if not isinstance(data, dict):
        data = {} if data is None else data
    node, path, position = data, [], 0
    while position < len(keys):
        index: str | int
        if isinstance(node, list):
            index, used = _list_index(node, keys[position:], assignment)
        elif isinstance(node, dict):
            index, used = keys[position], 1
        else:
            raise NetbuilderError(
                f"--set {assignment}: '{'.'.join(keys[:position])}' is a "
                f"{type(node).__name__}, not a mapping"
            )
        path.append(index)
        position += used
        if position == len(keys):
            node[index] = value
        else:
            if isinstance(node, dict) and node.get(index) is None:
                node[index] = {}
            node = node[index]
    return data, tuple(path)
