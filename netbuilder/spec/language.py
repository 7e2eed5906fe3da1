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

from pathlib import Path
from typing import Any

from ..errors import Location, NetbuilderError, excerpt
from .document import KEY, PathKey, SpecDocument, load_spec
from .edits import EDIT_KEYS, apply_edits
from .expansion import Expander, Output, where_text
from .expressions import Value, substitute
from .legacy import read_width_multiplier
from .overrides import apply_overrides

MAX_EXTENDS = 16
REPLACED = ("name", "description", "num_classes", "layers")  # a child replaces these
MERGED = ("input", "train", "params", "blocks")  # a child merges into these, key by key


# ---------------------------------------------------------------- extends


def load_chain(document: SpecDocument, seen: tuple[Path, ...] = ()) -> list[SpecDocument]:
    """[the most basic spec, ..., `document`]: each element extends the one before it."""
    data = document.data
    if not isinstance(data, dict) or "extends" not in data:
        return [document]
    where = document.locate(("extends",))
    target = data["extends"]
    if not isinstance(target, str) or not target:
        raise NetbuilderError(
            "extends names a spec file, e.g. 'extends: squeezenet_v11.yaml'", where, "extends"
        )
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
        raise NetbuilderError(
            "params maps names to values, e.g. 'params: {width: 1.0}'",
            out.positions.get(("params",), Location(source)),
            "params",
        )
    for name, value in params.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise NetbuilderError(
                f"parameter name {excerpt(name)} is not an identifier",
                out.positions.get(("params",)),
                "params",
            )
        names[name] = _evaluated(value, names, out, ("params", name))
    for key in ("input", "num_classes", "name", "train"):
        if key in out.data:
            out.data[key] = _evaluated(out.data[key], names, out, (key,))
    given: dict[str, Any] = out.data["input"] if isinstance(out.data.get("input"), dict) else {}
    size = given.get("size")
    height, width = (
        (size, size)
        if isinstance(size, int)
        else (tuple(size) if isinstance(size, list) and len(size) == 2 else (None, None))
    )
    builtin = {
        "num_classes": out.data.get("num_classes"),
        "input_channels": given.get("channels"),
        "input_size": height,
        "input_height": height,
        "input_width": width,
    }
    return {
        key: value
        for key, value in {**names, **builtin}.items()
        if isinstance(value, (int, float, str))
    }


def _evaluated(value: Any, names: dict[str, Value], out: Output, path: PathKey) -> Any:
    try:
        result = substitute(value, names)
    except NetbuilderError as error:
        raise error.with_context(out.positions.get(path), where_text(path)) from None
    if result is not value and isinstance(value, str):
        out.expressions[path] = value
    return result


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
        out.data["layers"] = expander.items(out.data["layers"], out, ("layers",), out, ("layers",))
        for edited in chain[provider:]:
            if isinstance(edited.data, dict):
                apply_edits(edited, out, expander)
    notes = read_width_multiplier(out)
    out.data.pop("params", None)
    resolved = SpecDocument(
        out.data, document.source, out.positions, merged.overrides, out.expressions, notes
    )
    return apply_overrides(resolved, late)
