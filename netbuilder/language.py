"""The spec language above plain layers, resolved into a plain spec before validation.

    extends: base.yaml               # another spec, relative to this file; edited below
    params: {width: 1.0}             # named values; --set params.width=0.5 changes them
    layers:
      - conv_bn: {out_channels: "${int(32 * width)}"}    # ${...}: a safe expression
        repeat: 2                    # two layers: name.1, name.2 (${i} is 1, then 2)
        when: "${width >= 0.5}"      # the item only where this holds
      - sequence: [...]              # a group of layers, which may repeat as a whole
        name: stage                  # its layers are stage.<layer> (stage.<k>.<layer>)
    override: {conv1: {stride: 2}}   # by layer name: merge parameters
    insert: [{after: conv1, layers: [...]}]     # or before:
    remove: [dropout1]

Resolving gives a flat list of named layers with every value concrete, each still located in
the file and line it came from (`extends` mixes files). Macros (`blocks:`) stay as they are:
the compiler expands them, where their input's shape is known. No torch here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .document import KEY, PathKey, SpecDocument, load_spec
from .errors import Location, NetbuilderError
from .expressions import Value, substitute
from .limits import MAX_LAYERS
from .spec import INPUT, apply_overrides

EDIT_KEYS = ("override", "insert", "remove")
ITEM_KEYS = ("name", "from", "repeat", "when")  # what a list item says besides its block
MAX_EXTENDS = 16
REPLACED = ("name", "description", "num_classes", "layers")  # a child replaces these
MERGED = ("input", "train", "params", "blocks")  # a child merges into these, key by key


@dataclass
class Output:
    """The resolved data being built, with the origin of every value."""

    data: dict[str, Any] = field(default_factory=dict)
    positions: dict[PathKey, Location] = field(default_factory=dict)
    notes: dict[PathKey, str] = field(default_factory=dict)

    def place(self, path: PathKey, source: SpecDocument, source_path: PathKey) -> None:
        """Positions of `source_path` in `source` now describe `path` here."""
        for rest, where in source.subtree(source_path).items():
            self.positions[(*path, *rest)] = where


# ---------------------------------------------------------------- extends


def load_chain(document: SpecDocument, seen: tuple[Path, ...] = ()) -> list[SpecDocument]:
    """[the most basic spec, ..., `document`]: each element extends the one before it."""
    data = document.data
    if not isinstance(data, dict) or "extends" not in data:
        return [document]
    where = document.locate(("extends",))
    target = data["extends"]
    if not isinstance(target, str) or not target:
        raise NetbuilderError("extends names a spec file, e.g. 'extends: squeezenet_v11.yaml'",
                              where, "extends")
    base_dir = Path(document.source).parent if Path(document.source).exists() else Path()
    path = base_dir / target
    chain = [*seen, Path(document.source).resolve()]
    if path.resolve() in chain:
        names = " -> ".join(p.name for p in [*chain, path.resolve()])
        raise NetbuilderError(f"a cycle: {names}", where, "extends")
    if len(chain) > MAX_EXTENDS:
        raise NetbuilderError(f"more than {MAX_EXTENDS} levels of extends", where, "extends")
    try:
        base = load_spec(path)
    except NetbuilderError as error:
        raise NetbuilderError(f"{target}: {error.message}", where, "extends") from None
    return [*load_chain(base, tuple(chain)), document]


def merge_chain(chain: list[SpecDocument]) -> tuple[Output, int]:
    """The top-level keys of the chain merged (children win), and the index of the document
    whose `layers:` is the base list (the edits of it and of later documents apply)."""
    out, provider = Output(), 0
    out.positions[()] = chain[-1].locate(())
    for index, document in enumerate(chain):
        data = document.data if isinstance(document.data, dict) else {}
        if not isinstance(document.data, dict):
            out.data = document.data
            out.place((), document, ())
            return out, index
        for key, value in data.items():
            if key in ("extends", *EDIT_KEYS):
                continue
            if key in MERGED and isinstance(value, dict) and isinstance(out.data.get(key), dict):
                for sub, item in value.items():
                    out.data[key][sub] = item
                    out.place((key, sub), document, (key, sub))
                    out.positions[(key, KEY, sub)] = document.locate_key((key,), sub)
            else:
                out.data[key] = dict(value) if isinstance(value, dict) else value
                out.place((key,), document, (key,))
            out.positions[(KEY, key)] = document.locate_key((), key)
            if key == "layers":
                provider = index
    return out, provider


# ---------------------------------------------------------------- names for expressions


def expression_names(out: Output, source: str) -> dict[str, Value]:
    """params (each may use the ones before it), then num_classes and the input's size."""
    names: dict[str, Value] = {}
    params = out.data.get("params", {})
    if not isinstance(params, dict):
        raise NetbuilderError("params maps names to values, e.g. 'params: {width: 1.0}'",
                              out.positions.get(("params",), Location(source)), "params")
    for name, value in params.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise NetbuilderError(f"parameter name {name!r} is not an identifier",
                                  out.positions.get(("params",)), "params")
        names[name] = _evaluated(value, names, out, ("params", name))
    for key in ("input", "num_classes", "name", "train"):
        if key in out.data:
            out.data[key] = _evaluated(out.data[key], names, out, (key,))
    given = out.data.get("input") if isinstance(out.data.get("input"), dict) else {}
    size = given.get("size")
    height, width = (size, size) if isinstance(size, int) else (
        tuple(size) if isinstance(size, list) and len(size) == 2 else (None, None))
    names |= {"num_classes": out.data.get("num_classes"), "input_channels": given.get("channels"),
              "input_size": height, "input_height": height, "input_width": width}
    return {key: value for key, value in names.items() if isinstance(value, (int, float, str))}


def _evaluated(value: Any, names: dict[str, Value], out: Output, path: PathKey) -> Any:
    try:
        result = substitute(value, names)
    except NetbuilderError as error:
        raise error.with_context(out.positions.get(path), _where(path)) from None
    if result is not value and isinstance(value, str):
        out.notes[path] = value
    return result


def _where(path: PathKey) -> str:
    """layers[0].conv.out_channels"""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path
                   ).lstrip(".")


# ---------------------------------------------------------------- layers


@dataclass
class Expander:
    """Turns the items of a layer list into plain, named layers. A layer without a name gets
    its block's name and a running number among the unnamed layers of that block (conv_bn1,
    conv_bn2, ...), counted over the whole spec, or within the group it belongs to."""

    names: dict[str, Value]
    counts: dict[str, int] = field(default_factory=dict)  # unnamed layers per block (top level)
    notes: dict[int, dict[PathKey, str]] = field(default_factory=dict)  # id(layer) -> exprs

    def items(self, items: Any, source: Output, path: PathKey, out: Output, out_path: PathKey,
              prefix: str = "", entry: Any = INPUT) -> list[Any]:
        """The layers of a list of items; `prefix` names a group's layers, `entry` is the layer
        a group instance reads (its `input`)."""
        if not isinstance(items, list):
            raise NetbuilderError(f"expected a list of layers, got {items!r}",
                                  _nearest(source.positions, path), _where(path))
        layers: list[Any] = []
        local: dict[str, str] = {}  # a name as written in this group -> its full name
        counts: dict[str, int] = {} if prefix else self.counts
        children = _children_positions(source.positions, path)
        last = entry
        for index, item in enumerate(items):
            item_path = (*path, index)
            for layer, layer_source in self.item(item, source, item_path, prefix, counts,
                                                 children.get(index, {}), last):
                self.link(layer, local, entry, prefix, first=not layers)
                out_index = (*out_path, len(layers))
                out.positions.update({(*out_index, *rest): where for rest, where in
                                      layer_source.items()})
                out.notes.update({(*out_index, *rest): text for rest, text in
                                  self.notes.pop(id(layer), {}).items()})
                layers.append(layer)
                if isinstance(layer, dict) and isinstance(layer.get("name"), str):
                    local[layer["name"].removeprefix(prefix)] = layer["name"]
                    last = layer["name"]
                if len(layers) > MAX_LAYERS:
                    raise NetbuilderError(f"more than {MAX_LAYERS:,} layers once repeated",
                                          source.positions.get(item_path), _where(item_path))
        return layers

    def item(self, item: Any, source: Output, path: PathKey, prefix: str,
             counts: dict[str, int], positions: dict[PathKey, Location], last: Any
             ) -> list[tuple[Any, dict[PathKey, Location]]]:
        """The layers one item stands for (none when its `when` is false)."""
        if not isinstance(item, dict):
            return [(item, positions)]
        where = source.positions.get(path)
        if "when" in item and not self.condition(item["when"], where, path):
            return []
        times = self.repeat(item.get("repeat", 1), where, path)
        results: list[tuple[Any, dict[PathKey, Location]]] = []
        for k in range(1, times + 1):
            names = {**self.names, "i": k}
            if "sequence" in item:
                instance = self.group(item, source, path, prefix, k, times, names, last)
            else:
                instance = [(self.layer(item, names, prefix, k, times, counts, where, path,
                                        positions), positions)]
            results += instance
            named = [layer["name"] for layer, _ in instance
                     if isinstance(layer, dict) and isinstance(layer.get("name"), str)]
            last = named[-1] if named else last
        return results

    def condition(self, value: Any, where: Location | None, path: PathKey) -> bool:
        result = _substitute(value, self.names, where, (*path, "when"))
        if not isinstance(result, bool):
            raise NetbuilderError(f"expected true or false, got {result!r}", where,
                                  _where((*path, "when")))
        return result

    def repeat(self, value: Any, where: Location | None, path: PathKey) -> int:
        count = _substitute(value, self.names, where, (*path, "repeat"))
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise NetbuilderError(f"expected a whole number >= 1, got {count!r}", where,
                                  _where((*path, "repeat")))
        return count

    def layer(self, item: dict[str, Any], names: dict[str, Value], prefix: str, k: int,
              times: int, counts: dict[str, int], where: Location | None, path: PathKey,
              positions: dict[PathKey, Location]) -> dict[str, Any]:
        blocks = [key for key in item if key not in (*ITEM_KEYS, "sequence")]
        layer = {key: _substitute_at(value, names, positions, (key,), where, path)
                 for key, value in item.items() if key not in ("repeat", "when")}
        self.notes[id(layer)] = {(key, *rest): text for key, value in item.items()
                                 for rest, text in _expressions(value)}
        if len(blocks) != 1:
            return layer  # the schema says what is wrong with it
        name = layer.get("name")
        if not isinstance(name, str):
            counts[blocks[0]] = counts.get(blocks[0], 0) + 1
            name = f"{blocks[0]}{counts[blocks[0]]}"
        elif times > 1:
            name = f"{name}.{k}"
        layer["name"] = f"{prefix}{name}"
        return layer

    def group(self, item: dict[str, Any], source: Output, path: PathKey, prefix: str, k: int,
              times: int, names: dict[str, Value], entry: Any
              ) -> list[tuple[Any, dict[PathKey, Location]]]:
        name = item.get("name")
        if not isinstance(name, str):
            raise NetbuilderError("a sequence needs a name: its layers are named <name>.<layer>",
                                  source.positions.get(path), _where(path))
        inner = f"{prefix}{name}.{k}." if times > 1 else f"{prefix}{name}."
        scratch = Output(positions={})
        expander = Expander(names, self.counts, self.notes)
        layers = expander.items(item["sequence"], source, (*path, "sequence"), scratch, (),
                                inner, entry=item.get("from", entry))
        return [(layer, {rest[1:]: where for rest, where in scratch.positions.items()
                         if rest[0] == index})
                for index, layer in enumerate(layers)]

    @staticmethod
    def link(layer: Any, local: dict[str, str], entry: Any, prefix: str, first: bool) -> None:
        """Inside a group, `from:` names a sibling by its short name, and `input` is the
        layer before the group, which its first layer reads unless it says otherwise."""
        if not prefix or not isinstance(layer, dict):
            return
        if "from" not in layer:
            if first:
                layer["from"] = entry
            return
        sources = layer["from"]
        single = not isinstance(sources, list)
        renamed = [entry if s == INPUT else local.get(s, s) if isinstance(s, str) else s
                   for s in ([sources] if single else sources)]
        layer["from"] = renamed[0] if single else renamed


def _nearest(positions: dict[PathKey, Location], path: PathKey) -> Location | None:
    """The position of `path`, or of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        if path[:end] in positions:
            return positions[path[:end]]
    return None


def _expressions(value: Any, path: PathKey = ()) -> list[tuple[PathKey, str]]:
    """(path, text) of every ${...} string inside a value."""
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _expressions(item,
                                                                                (*path, key))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value)
                for found in _expressions(item, (*path, index))]
    return [(path, value)] if isinstance(value, str) and "${" in value else []


def _children_positions(positions: dict[PathKey, Location],
                        path: PathKey) -> dict[int, dict[PathKey, Location]]:
    """Positions under each item of the list at `path`, keyed by the item's index: one pass
    over the positions, however long the list."""
    size = len(path)
    children: dict[int, dict[PathKey, Location]] = {}
    for where_path, where in positions.items():
        if len(where_path) > size and where_path[:size] == path and isinstance(
                where_path[size], int):
            children.setdefault(where_path[size], {})[where_path[size + 1:]] = where
    return children


def _substitute_at(value: Any, names: dict[str, Value], positions: dict[PathKey, Location],
                   inner: PathKey, where: Location | None, path: PathKey) -> Any:
    """`substitute`, with an error located at the exact value (`inner` below the item)."""
    if isinstance(value, dict):
        return {key: _substitute_at(item, names, positions, (*inner, key), where, path)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute_at(item, names, positions, (*inner, index), where, path)
                for index, item in enumerate(value)]
    return _substitute(value, names, positions.get(inner, where), (*path, *inner))


def _substitute(value: Any, names: dict[str, Value], where: Location | None,
                path: PathKey) -> Any:
    try:
        return substitute(value, names)
    except NetbuilderError as error:
        raise error.with_context(where, _where(path)) from None


# ---------------------------------------------------------------- edits by layer name


def apply_edits(document: SpecDocument, out: Output, expander: Expander) -> None:
    """`override`, `insert` and `remove` of one document, on the resolved layers."""
    data = document.data
    layers = out.data["layers"]
    for key, kind, example in (("override", dict, "{layer: {parameter: value}}"),
                               ("insert", list, "[{after: layer, layers: [...]}]"),
                               ("remove", list, "[layer, ...]")):
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise NetbuilderError(f"{key} expects {example}, got {data[key]!r}",
                                  document.locate((key,)), key)
    if not isinstance(layers, list):
        return  # the schema says what is wrong with it
    for name, params in (data.get("override") or {}).items():
        index = _find(layers, name, document, ("override",), "override")
        block = next(key for key in layers[index] if key not in ITEM_KEYS)
        where = document.locate(("override", name))
        if not isinstance(params, dict):
            raise NetbuilderError("override maps a layer name to the parameters it changes",
                                  where, f"override.{name}")
        current = layers[index][block] or {}
        layers[index][block] = {**current, **_substitute(params, expander.names, where,
                                                          ("override", name))}
        for key in params:
            out.positions[("layers", index, block, key)] = document.locate(
                ("override", name, key))
    for number, edit in enumerate(data.get("insert") or []):
        path = ("insert", number)
        if not isinstance(edit, dict) or len({"before", "after"} & set(edit)) != 1:
            raise NetbuilderError("insert items say `before: <layer>` or `after: <layer>` and "
                                  "`layers: [...]`", document.locate(path), _where(path))
        anchor = "before" if "before" in edit else "after"
        index = _find(layers, edit[anchor], document, (*path, anchor), "insert")
        source = Output(document.data, document.positions)
        scratch = Output()
        new = expander.items(edit.get("layers"), source, (*path, "layers"), scratch, ())
        at = index if anchor == "before" else index + 1
        _splice(out, at, new, scratch)
    for number, name in enumerate(data.get("remove") or []):
        index = _find(layers, name, document, ("remove", number), "remove")
        _splice(out, index, [], Output(), remove=1)


def _find(layers: list[Any], name: Any, document: SpecDocument, path: PathKey,
          what: str) -> int:
    names = [layer.get("name") if isinstance(layer, dict) else None for layer in layers]
    if name in names:
        return names.index(name)
    close = difflib.get_close_matches(str(name), [n for n in names if isinstance(n, str)], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise NetbuilderError(f"no layer named '{name}'{hint}", document.locate(path),
                          _where(path))


def _splice(out: Output, at: int, new: list[Any], scratch: Output, remove: int = 0) -> None:
    """Replace `remove` layers at `at` with `new`, moving every later position along."""
    shift = len(new) - remove
    moved: dict[PathKey, Location] = {}
    for path, where in out.positions.items():
        if path[:1] == ("layers",) and len(path) > 1 and isinstance(path[1], int):
            if path[1] >= at + remove:
                moved[("layers", path[1] + shift, *path[2:])] = where
            elif path[1] < at:
                moved[path] = where
        else:
            moved[path] = where
    for path, where in scratch.positions.items():
        moved[("layers", at + path[0], *path[1:])] = where
    out.positions = moved
    out.data["layers"][at:at + remove] = new


# ---------------------------------------------------------------- resolve


def resolve(document: SpecDocument, assignments: list[str] | None = None) -> SpecDocument:
    """The plain spec `document` stands for, with `--set` assignments applied: those under
    `layers.` (a layer may be addressed by name) after expansion, all others before it."""
    assignments = list(assignments or [])
    late = [a for a in assignments if a.startswith("layers.")]
    early = [a for a in assignments if not a.startswith("layers.")]
    chain = load_chain(document)
    out, provider = merge_chain(chain)
    if not isinstance(out.data, dict):
        return SpecDocument(out.data, document.source, out.positions)
    merged = apply_overrides(SpecDocument(out.data, document.source, out.positions), early)
    out = Output(merged.data, merged.positions)
    names = expression_names(out, document.source)
    expander = Expander(names)
    if "layers" in out.data:
        out.data["layers"] = expander.items(out.data["layers"], out, ("layers",), out,
                                            ("layers",))
        for edited in chain[provider:]:
            if isinstance(edited.data, dict):
                apply_edits(edited, out, expander)
    out.data.pop("params", None)
    resolved = SpecDocument(out.data, document.source, out.positions, merged.overrides,
                            out.notes)
    return apply_overrides(resolved, late)
