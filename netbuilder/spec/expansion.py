"""Layer lists of the spec language expanded into plain, named layers: `repeat`, `when`,
`sequence` groups and `${...}` values, each layer keeping the file position it came from.
No torch here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Location, NetbuilderError, excerpt
from ..limits import MAX_EXPANSION, MAX_LAYERS
from .document import PathKey, SpecDocument
from .expressions import Value, substitute
from .sources import INPUT, SCOPE_INPUT, scope_position
from .types import LAYER_KEYS

ITEM_KEYS = (*LAYER_KEYS, "repeat", "when")  # what a list item says besides its block


@dataclass
class Output:
    """The resolved data being built, with the origin of every value."""

    data: dict[str, Any] = field(default_factory=dict)
    positions: dict[PathKey, Location] = field(default_factory=dict)
    expressions: dict[PathKey, str] = field(default_factory=dict)

    def place(self, path: PathKey, source: SpecDocument, source_path: PathKey) -> None:
        """Positions of `source_path` in `source` now describe `path` here."""
        for rest, where in source.subtree(source_path).items():
            self.positions[(*path, *rest)] = where


def where_text(path: PathKey) -> str:
    """layers[0].conv.out_channels"""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(
        "."
    )


@dataclass
class Budget:
    """The layer instances the language may still make: each repeat, sequence instance, macro
    use and insert spends from it before anything is built, so no spec can make netbuilder
    generate more than MAX_EXPANSION of them (those a `when` drops included)."""

    left: int = MAX_EXPANSION

    def spend(self, count: int, where: Location | None, path: PathKey) -> None:
        if count > self.left:
            raise NetbuilderError(
                f"the spec expands to more than {MAX_EXPANSION:,} layer instances (repeat, "
                f"sequences, macros and inserts counted as they are made); a spec holds at most "
                f"{MAX_LAYERS:,} layers",
                where,
                where_text(path),
            )
        self.left -= count


@dataclass
class Expander:
    """Turns the items of a layer list into plain, named layers. A layer without a name gets
    its block's name and a running number among the unnamed layers of that block (conv_bn1,
    conv_bn2, ...), counted over the whole spec, or within the group it belongs to."""

    names: dict[str, Value]
    counts: dict[str, int] = field(default_factory=dict)  # unnamed layers per block (top level)
    expressions: dict[int, dict[PathKey, str]] = field(default_factory=dict)  # id(layer) -> exprs
    budget: Budget = field(default_factory=Budget)  # shared with the groups it expands
    base: int = 1  # the first copy's number (`index_base`): 0 gives PyTorch's layer1.0.conv1

    def items(
        self,
        items: Any,
        source: Output,
        path: PathKey,
        out: Output,
        out_path: PathKey,
        prefix: str = "",
        entry: Any = INPUT,
    ) -> list[Any]:
        """The layers of a list of items; `prefix` names a group's layers, `entry` is the layer
        a group instance reads (its `input`)."""
        if not isinstance(items, list):
            raise NetbuilderError(
                f"expected a list of layers, got {excerpt(items)}",
                _nearest(source.positions, path),
                where_text(path),
            )
        layers: list[Any] = []
        nested: list[bool] = []  # the layer came from a nested sequence, which linked it
        counts: dict[str, int] = {} if prefix else self.counts
        children = _children_positions(source.positions, path)
        last = entry
        for index, item in enumerate(items):
            item_path = (*path, index)
            is_group = isinstance(item, dict) and "sequence" in item
            for layer, layer_source in self.item(
                item, source, item_path, prefix, counts, children.get(index, {}), last
            ):
                out_index = (*out_path, len(layers))
                out.positions.update(
                    {(*out_index, *rest): where for rest, where in layer_source.items()}
                )
                out.expressions.update(
                    {
                        (*out_index, *rest): text
                        for rest, text in self.expressions.pop(id(layer), {}).items()
                    }
                )
                layers.append(layer)
                nested.append(is_group)
                if isinstance(layer, dict) and isinstance(layer.get("name"), str):
                    last = layer["name"]
                if len(layers) > MAX_LAYERS:
                    raise NetbuilderError(
                        f"more than {MAX_LAYERS:,} layers once repeated",
                        source.positions.get(item_path),
                        where_text(item_path),
                    )
        if prefix:
            link_group(layers, nested, entry, prefix, out, out_path)
        return layers

    def item(
        self,
        item: Any,
        source: Output,
        path: PathKey,
        prefix: str,
        counts: dict[str, int],
        positions: dict[PathKey, Location],
        last: Any,
    ) -> list[tuple[Any, dict[PathKey, Location]]]:
        """The layers one item stands for (none when its `when` is false). Looking at the item
        costs one instance of the budget, each copy past the first one more: an item that a
        `when` drops or that repeats 0 times is work too."""
        where = source.positions.get(path)
        self.budget.spend(1, where, path)
        if not isinstance(item, dict):
            return [(item, positions)]
        if "when" in item and not self.condition(item["when"], where, path):
            return []
        times = self.repeat(item.get("repeat", 1), where, path)
        numbered = "repeat" in item  # numbered whatever the count: repeat: 1 gives name.1
        self.budget.spend(max(times - 1, 0), where, path)
        results: list[tuple[Any, dict[PathKey, Location]]] = []
        for k in range(self.base, self.base + times):
            names = {**self.names, "i": k}
            if "sequence" in item:
                instance = self.group(item, source, path, prefix, k, numbered, names, last)
            else:
                layer = self.layer(item, names, prefix, k, numbered, counts, where, path, positions)
                instance = [(layer, positions)]
            results += instance
            named = [
                layer["name"]
                for layer, _ in instance
                if isinstance(layer, dict) and isinstance(layer.get("name"), str)
            ]
            last = named[-1] if named else last
        return results

    def condition(self, value: Any, where: Location | None, path: PathKey) -> bool:
        result = substitute_located(value, self.names, where, (*path, "when"))
        if not isinstance(result, bool):
            raise NetbuilderError(
                f"expected true or false, got {excerpt(result)}", where, where_text((*path, "when"))
            )
        return result

    def repeat(self, value: Any, where: Location | None, path: PathKey) -> int:
        count = substitute_located(value, self.names, where, (*path, "repeat"))
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise NetbuilderError(
                f"expected a whole number >= 0, got {excerpt(count)}",
                where,
                where_text((*path, "repeat")),
            )
        return count

    def layer(
        self,
        item: dict[str, Any],
        names: dict[str, Value],
        prefix: str,
        k: int,
        numbered: bool,
        counts: dict[str, int],
        where: Location | None,
        path: PathKey,
        positions: dict[PathKey, Location],
    ) -> dict[str, Any]:
        blocks = [key for key in item if key not in (*ITEM_KEYS, "sequence")]
        layer = {
            key: _substitute_at(value, names, positions, (key,), where, path)
            for key, value in item.items()
            if key not in ("repeat", "when")
        }
        self.expressions[id(layer)] = {
            (key, *rest): text for key, value in item.items() for rest, text in _expressions(value)
        }
        if len(blocks) != 1:
            return layer  # the schema says what is wrong with it
        name = layer.get("name")
        if not isinstance(name, str):
            counts[blocks[0]] = counts.get(blocks[0], 0) + 1
            name = f"{blocks[0]}{counts[blocks[0]]}"
        elif numbered:
            name = f"{name}.{k}"
        layer["name"] = f"{prefix}{name}"
        return layer

    def group(
        self,
        item: dict[str, Any],
        source: Output,
        path: PathKey,
        prefix: str,
        k: int,
        numbered: bool,
        names: dict[str, Value],
        entry: Any,
    ) -> list[tuple[Any, dict[PathKey, Location]]]:
        name = item.get("name")
        if not isinstance(name, str):
            raise NetbuilderError(
                "a sequence needs a name: its layers are named <name>.<layer>",
                source.positions.get(path),
                where_text(path),
            )
        inner = f"{prefix}{name}.{k}." if numbered else f"{prefix}{name}."
        scratch = Output(positions={})
        expander = Expander(names, self.counts, self.expressions, self.budget, self.base)
        layers = expander.items(
            item["sequence"],
            source,
            (*path, "sequence"),
            scratch,
            (),
            inner,
            entry=item.get("from", entry),
        )
        return [
            (
                layer,
                {rest[1:]: where for rest, where in scratch.positions.items() if rest[0] == index},
            )
            for index, layer in enumerate(layers)
        ]


def link_group(
    layers: list[Any], nested: list[bool], entry: Any, prefix: str, out: Output, out_path: PathKey
) -> None:
    """`from:` inside a group (a sequence, or a macro's body) by the spec's one rule
    (`sources`): a sibling's short name or a relative index within the group become the
    sibling's full name, `input` (and -k from the k-th layer) the layer the group reads, which
    its first layer reads unless it says otherwise. Other names pass on to the enclosing scope."""
    scope = [
        layer.get("name", "").removeprefix(prefix) if isinstance(layer, dict) else None
        for layer in layers
    ]
    label = f"the input of '{prefix.rstrip('.')}'"
    for position, layer in enumerate(layers):
        if nested[position] or not isinstance(layer, dict):
            continue
        if "from" not in layer:
            if position == 0:
                layer["from"] = entry
            continue
        single = not isinstance(layer["from"], list)
        resolved = []
        for source in [layer["from"]] if single else layer["from"]:
            if isinstance(source, bool) or not isinstance(source, (str, int)):
                resolved.append(source)  # the schema says what is wrong with it
                continue
            try:
                target = scope_position(source, position, scope, label, top_level=False)
            except NetbuilderError as error:
                where = out.positions.get(
                    (*out_path, position, "from"), out.positions.get((*out_path, position))
                )
                raise error.with_context(where, f"{layer.get('name')}.from") from None
            resolved.append(
                entry
                if target == SCOPE_INPUT
                else layers[target]["name"]
                if isinstance(target, int)
                else target
            )
        layer["from"] = resolved[0] if single else resolved


def _nearest(positions: dict[PathKey, Location], path: PathKey) -> Location | None:
    """The position of `path`, or of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        if path[:end] in positions:
            return positions[path[:end]]
    return None


def _expressions(value: Any, path: PathKey = ()) -> list[tuple[PathKey, str]]:
    """(path, text) of every ${...} string inside a value."""
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _expressions(item, (*path, key))]
    if isinstance(value, list):
        return [
            found
            for index, item in enumerate(value)
            for found in _expressions(item, (*path, index))
        ]
    return [(path, value)] if isinstance(value, str) and "${" in value else []


def _children_positions(
    positions: dict[PathKey, Location], path: PathKey
) -> dict[int, dict[PathKey, Location]]:
    """Positions under each item of the list at `path`, keyed by the item's index: one pass
    over the positions, however long the list."""
    size = len(path)
    children: dict[int, dict[PathKey, Location]] = {}
    for where_path, where in positions.items():
        if len(where_path) > size and where_path[:size] == path:
            index = where_path[size]
            if isinstance(index, int):
                children.setdefault(index, {})[where_path[size + 1 :]] = where
    return children


def _substitute_at(
    value: Any,
    names: dict[str, Value],
    positions: dict[PathKey, Location],
    inner: PathKey,
    where: Location | None,
    path: PathKey,
) -> Any:
    """`substitute`, with an error located at the exact value (`inner` below the item)."""
    if isinstance(value, dict):
        return {
            key: _substitute_at(item, names, positions, (*inner, key), where, path)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _substitute_at(item, names, positions, (*inner, index), where, path)
            for index, item in enumerate(value)
        ]
    return substitute_located(value, names, positions.get(inner, where), (*path, *inner))


def substitute_located(
    value: Any, names: dict[str, Value], where: Location | None, path: PathKey
) -> Any:
    try:
        return substitute(value, names)
    except NetbuilderError as error:
        raise error.with_context(where, where_text(path)) from None
