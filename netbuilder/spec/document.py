"""A spec file as located YAML: safe loading with the line and column of every value, within
the limits that keep a hostile file from hanging netbuilder or filling its memory.

No torch here: reading a spec must not need a model.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import Location, NetbuilderError, Note
from ..limits import MAX_SPEC_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES

PathKey = tuple[str | int, ...]
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where PyYAML has it
# a float with an exponent, with or without a dot: YAML 1.2 reads `1e-3`, `3E-4` and `5e2` as
# numbers, where PyYAML (YAML 1.1) wants `1.0e-3` and returns a string for the rest
EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")


class SpecLoader(_SAFE_LOADER):  # type: ignore[misc]
    """PyYAML's safe loader, with floats as people write them (YAML 1.2's rule for exponents)."""


SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", EXPONENT_FLOAT, list("-+0123456789."))
_LOADER = SpecLoader
KEY = "<key>"  # path marker: (*mapping_path, KEY, name) is where the key `name` itself is written


@dataclass
class SpecDocument:
    """Plain data of a spec plus where each value came from: a file, line and column (a
    resolved spec mixes files: `extends` brings in another), or the `--set` argument."""

    data: Any
    source: str
    positions: dict[PathKey, Location] = field(default_factory=dict)
    overrides: dict[PathKey, str] = field(default_factory=dict)  # path -> its `--set` argument
    expressions: dict[PathKey, str] = field(default_factory=dict)  # path -> the ${...} behind it
    notes: list[Note] = field(default_factory=list)  # remarks for the user, in reading order

    def locate(self, path: PathKey) -> Location:
        """The `--set` argument that wrote `path` (or an ancestor), else the position of `path`
        or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.overrides:
                return Location(f"--set {self.overrides[path[:end]]}")
        for end in range(len(path), -1, -1):
            if path[:end] in self.positions:
                return self.positions[path[:end]]
        return Location(self.source)

    def locate_key(self, mapping_path: PathKey, key: str) -> Location:
        """Where a key of a mapping is written (for unknown or misspelt keys)."""
        position = self.positions.get((*mapping_path, KEY, key))
        if position is None or (*mapping_path, key) in self.overrides:
            return self.locate((*mapping_path, key))
        return position

    def subtree(self, prefix: PathKey) -> dict[PathKey, Location]:
        """Positions under `prefix`, keyed by the rest of their path."""
        size = len(prefix)
        return {
            path[size:]: where for path, where in self.positions.items() if path[:size] == prefix
        }


def load_spec(path: str | Path) -> SpecDocument:
    """Read a spec file; every failure becomes a NetbuilderError naming the file."""
    return parse_spec(read_spec_text(Path(path)), str(path))


def read_spec_text(path: Path) -> str:
    """The text of a regular file of at most MAX_SPEC_BYTES: a FIFO, a device such as
    /dev/zero, a huge file or a symlink loop is refused before it can block or fill memory."""
    where = Location(str(path))
    try:
        status = path.stat()
    except FileNotFoundError:
        raise NetbuilderError("spec file not found", where) from None
    except OSError as exc:
        raise NetbuilderError(f"cannot read spec file: {exc.strerror or exc}", where) from None
    if stat.S_ISDIR(status.st_mode):
        raise NetbuilderError("is a directory; expected a spec file (.yaml)", where)
    if not stat.S_ISREG(status.st_mode):
        raise NetbuilderError(
            "is not a regular file (a pipe, device or socket); netbuilder reads spec files only",
            where,
        )
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise NetbuilderError(f"cannot read spec file: {exc.strerror or exc}", where) from None
    if status.st_size > MAX_SPEC_BYTES or len(data) > MAX_SPEC_BYTES:
        raise NetbuilderError(
            f"the spec file is {max(status.st_size, len(data)):,} bytes; the "
            f"limit is {MAX_SPEC_BYTES:,}",
            where,
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NetbuilderError(
            f"not UTF-8 text (byte {exc.start}); is this a spec file?", where
        ) from None


def parse_spec(text: str, source: str = "<string>") -> SpecDocument:
    """Parse YAML text with the safe loader, keeping line/column of every node.

    Nesting depth and the size the document takes once YAML aliases are expanded are bounded
    (see `limits`), and aliases become independent copies: `--set` on one layer never changes
    another that was written as `*alias` of it.
    """
    node, data = load_yaml(text, source)
    if node is None:
        raise NetbuilderError(
            "the spec is empty; expected a mapping with 'name' and 'layers'", Location(source, 1, 1)
        )
    positions: dict[PathKey, Location] = {}
    _record_positions(node, (), positions, source)
    return SpecDocument(data, source, positions)


def load_yaml(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """(composed node, plain data) of one YAML document, within the limits; any failure is a
    NetbuilderError naming `source`."""
    if len(text) > MAX_SPEC_BYTES:
        raise NetbuilderError(
            f"the spec is {len(text):,} characters; the limit is {MAX_SPEC_BYTES:,}",
            Location(source),
        )
    try:
        _check_nesting(text, source)
        loader = _LOADER(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, None
            _check_expanded_size(node, source)
            _reject_duplicate_keys(node, source)
            return node, _unshared(loader.construct_document(node))
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(source, mark.line + 1, mark.column + 1) if mark else Location(source)
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise NetbuilderError(f"invalid YAML: {problem}", where) from None
    except yaml.YAMLError as exc:
        raise NetbuilderError(f"invalid YAML: {_first_line(exc)}", Location(source)) from None
    except ValueError as exc:  # Python converts integers of at most 4300 digits
        raise NetbuilderError(
            f"invalid value: {_first_line(exc).split(';')[0]}", Location(source)
        ) from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _check_nesting(text: str, source: str) -> None:
    """Walk the parser's events (an iterative pass, unlike composing) and refuse nesting deeper
    than MAX_YAML_DEPTH before the recursive composer sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                mark = event.start_mark
                raise NetbuilderError(
                    f"the spec nests deeper than {MAX_YAML_DEPTH} levels",
                    Location(source, mark.line + 1, mark.column + 1) if mark else Location(source),
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expanded_size(root: yaml.Node, source: str) -> None:
    """Count the values the document holds with every alias expanded, visiting each node of the
    graph once (a "billion laughs" document is small as a graph and huge expanded); refuse a
    node that contains itself, and more than MAX_YAML_NODES values or MAX_YAML_DEPTH levels."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded values, expanded depth)
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            kids = [measured[id(kid)] for kid in _children(node)]
            measured[id(node)] = (
                1 + sum(size for size, _ in kids),
                1 + max((depth for _, depth in kids), default=0),
            )
            on_path.discard(id(node))
            continue
        if id(node) in measured:
            continue
        on_path.add(id(node))
        stack.append((node, True))
        for kid in _children(node):
            if id(kid) in on_path:
                mark = kid.start_mark
                raise NetbuilderError(
                    "a YAML alias refers to a value that contains it",
                    Location(source, mark.line + 1, mark.column + 1),
                )
            stack.append((kid, False))
    size, depth = measured[id(root)]
    if size > MAX_YAML_NODES:
        raise NetbuilderError(
            f"the spec holds {size:,} values once its YAML aliases are "
            f"expanded; the limit is {MAX_YAML_NODES:,}",
            Location(source),
        )
    if depth > MAX_YAML_DEPTH:
        raise NetbuilderError(
            f"the spec nests {depth} levels deep once its YAML aliases are "
            f"expanded; the limit is {MAX_YAML_DEPTH}",
            Location(source),
        )


def _unshared(value: Any) -> Any:
    """A copy in which no two places share a list or mapping (YAML aliases share them)."""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


def _record_positions(
    node: yaml.Node, path: PathKey, out: dict[PathKey, Location], source: str
) -> None:
    out[path] = Location(source, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, KEY, key)] = Location(
                source, key_node.start_mark.line + 1, key_node.start_mark.column + 1
            )
            _record_positions(value_node, (*path, key), out, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_positions(item, (*path, index), out, source)


def _reject_duplicate_keys(node: yaml.Node, source: str) -> None:
    """YAML silently keeps the last of two equal keys; in a spec that is always a mistake. A
    key is a plain value: YAML allows a list or mapping as a key, a spec never needs one."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                mark = key_node.start_mark
                raise NetbuilderError(
                    "a key is a name (or a number), not a list or mapping",
                    Location(source, mark.line + 1, mark.column + 1),
                )
            if key_node.value in seen:
                mark = key_node.start_mark
                raise NetbuilderError(
                    f"duplicate key '{key_node.value}'",
                    Location(source, mark.line + 1, mark.column + 1),
                )
            seen.add(key_node.value)
            _reject_duplicate_keys(value_node, source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, source)
