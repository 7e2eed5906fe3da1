"""`override`, `insert` and `remove`: a spec's edits of the layers it extends, addressed by
layer name. No torch here."""

from __future__ import annotations

import difflib
from typing import Any

from ..errors import Location, NetbuilderError, excerpt
from .document import PathKey, SpecDocument
from .expansion import ITEM_KEYS, Expander, Output, substitute_located, where_text

EDIT_KEYS = ("override", "insert", "remove")


def apply_edits(document: SpecDocument, out: Output, expander: Expander) -> None:
    """`override`, `insert` and `remove` of one document, on the resolved layers."""
    data = document.data
    layers = out.data["layers"]
    for key, kind, example in (
        ("override", dict, "{layer: {parameter: value}}"),
        ("insert", list, "[{after: layer, layers: [...]}]"),
        ("remove", list, "[layer, ...]"),
    ):
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise NetbuilderError(
                f"{key} expects {example}, got {excerpt(data[key])}", document.locate((key,)), key
            )
    if not isinstance(layers, list):
        return  # the schema says what is wrong with it
    for name, params in (data.get("override") or {}).items():
        index = _find(layers, name, document, ("override",), "override")
        block = next(key for key in layers[index] if key not in ITEM_KEYS)
        where = document.locate(("override", name))
        if not isinstance(params, dict):
            raise NetbuilderError(
                "override maps a layer name to the parameters it changes", where, f"override.{name}"
            )
        current = layers[index][block] or {}
        layers[index][block] = {
            **current,
            **substitute_located(params, expander.names, where, ("override", name)),
        }
        for key in params:
            out.positions[("layers", index, block, key)] = document.locate(("override", name, key))
    for number, edit in enumerate(data.get("insert") or []):
        path = ("insert", number)
        if not isinstance(edit, dict) or len({"before", "after"} & set(edit)) != 1:
            raise NetbuilderError(
                "insert items say `before: <layer>` or `after: <layer>` and `layers: [...]`",
                document.locate(path),
                where_text(path),
            )
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


def _find(layers: list[Any], name: Any, document: SpecDocument, path: PathKey, what: str) -> int:
    names = [layer.get("name") if isinstance(layer, dict) else None for layer in layers]
    if name in names:
        return names.index(name)
    close = difflib.get_close_matches(str(name), [n for n in names if isinstance(n, str)], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise NetbuilderError(f"no layer named '{name}'{hint}", document.locate(path), where_text(path))


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
        if isinstance(path[0], int):  # scratch positions start with the new layer's index
            moved[("layers", at + path[0], *path[1:])] = where
    out.positions = moved
    out.data["layers"][at : at + remove] = new
