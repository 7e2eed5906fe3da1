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
import os
from pathlib import Path
from typing import Any

from ..errors import Location, NetbuilderError, excerpt
from .bundled import SPEC_SUFFIXES, bundled_dir, bundled_spec
from .document import KEY, PathKey, SpecDocument, load_spec
from .edits import EDIT_KEYS, apply_edits
from .expansion import Expander, Output, where_text
from .expressions import ASCII_NAME, Value, substitute
from .legacy import read_format, read_width_multiplier
from .overrides import apply_overrides
from .search import SECTION

MAX_EXTENDS = 16
INDEX_BASE = "index_base"  # 0: repeated layers are numbered as PyTorch does (layer1.0.conv1)
BUILTIN_NAMES = (
    "num_classes",
    "input_channels",
    "input_size",
    "input_height",
    "input_width",
    "i",
)  # what every expression may read besides the params
SPEC_PATH_ENV = "NETBUILDER_SPEC_PATH"  # more folders `extends:` may read from (os.pathsep)
REPLACED = ("name", "description", "num_classes", "layers")  # a child replaces these
MERGED = ("input", "train", "params", "blocks")  # a child merges into these, key by key


# ---------------------------------------------------------------- extends


def load_chain(document: SpecDocument, seen: tuple[Path, ...] = ()) -> list[SpecDocument]:
    """[the most basic spec, ..., `document`]: each element extends the one before it."""
    data = document.data
    if not isinstance(data, dict) or "extends" not in data:
        return [document]
    where = document.locate(("extends",))
    path = extends_path(data["extends"], document, where, seen)
    chain = [*seen, _resolved(Path(document.source))]
    if _resolved(path) in chain:
        names = " -> ".join(p.name for p in [*chain, _resolved(path)])
        raise NetbuilderError(f"a cycle: {names}", where, "extends")
    if len(chain) > MAX_EXTENDS:
        raise NetbuilderError(f"more than {MAX_EXTENDS} levels of extends", where, "extends")
    try:
        base = load_spec(path)
    except NetbuilderError as error:
        raise NetbuilderError(f"{data['extends']}: {error.message}", where, "extends") from None
    if not isinstance(base.data, dict):  # what the file holds is not quoted: it may not be a spec
        raise NetbuilderError(
            f"{data['extends']} is not a spec: its top level is not a mapping "
            "of name, input, layers, ...",
            where,
            "extends",
        )
    return [*load_chain(base, tuple(chain)), document]


def extends_path(
    target: Any, document: SpecDocument, where: Location, seen: tuple[Path, ...]
) -> Path:
    """The file `extends:` names, by the rules that keep it to specs: a relative path to a
    .yaml file, from the extending spec's folder, that stays inside the first spec's folder,
    the working folder or a folder listed in $NETBUILDER_SPEC_PATH (no `/etc/passwd`, no
    `../../..` out of the project)."""
    if not isinstance(target, str) or not target or "\0" in target:
        raise NetbuilderError(
            "extends names a spec file, e.g. 'extends: squeezenet_v11.yaml'", where, "extends"
        )
    relative = Path(target)
    bundled = bundled_spec(target)
    if not relative.suffix and bundled is not None:  # `extends: squeezenet_v11`
        return bundled
    if relative.is_absolute():
        raise NetbuilderError(
            f"{excerpt(target)} is absolute; extends takes a path relative to the spec's folder",
            where,
            "extends",
        )
    if relative.suffix not in SPEC_SUFFIXES:
        raise NetbuilderError(
            f"{excerpt(target)} is not a spec file name (.yaml or .yml)", where, "extends"
        )
    source = Path(document.source)
    path = (source.parent if source.is_file() else Path()) / relative
    if not path.exists() and bundled is not None:  # not beside the spec: the bundled one
        return bundled
    listed = [
        Path(folder) for folder in os.environ.get(SPEC_PATH_ENV, "").split(os.pathsep) if folder
    ]
    roots = [
        _resolved(folder)
        for folder in (
            Path(seen[0]).parent if seen else source.parent,
            Path.cwd(),
            *listed,
            bundled_dir(),
        )
    ]
    resolved = _resolved(path, where)
    if not any(resolved.is_relative_to(root) for root in roots):
        raise NetbuilderError(
            f"{excerpt(target)} lies outside the spec's folder and the working folder; extends "
            f"reads specs from inside them (or from the folders ${SPEC_PATH_ENV} lists)",
            where,
            "extends",
        )
    return path


def _resolved(path: Path, where: Location | None = None) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, say
        raise NetbuilderError(f"{path}: {exc}", where, "extends") from None


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
        check_param_name(name, BUILTIN_NAMES, out.positions.get(("params", KEY, name)), "params")
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
        if isinstance(value, (int, float, str, list))
    }


def unknown_param_hint(name: str, declared: list[str]) -> str:
    """What follows "no param X" in every message about one: the near miss, then the list."""
    close = difflib.get_close_matches(name, declared, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return hint + (f" (it declares {', '.join(declared)})" if declared else " (it declares none)")


def check_param_overrides(params: Any, assignments: list[str]) -> None:
    """`--set params.X=...` must name a declared param: a typo would otherwise be accepted and
    change nothing (a sweep over it trains one model under many labels)."""
    declared = list(params) if isinstance(params, dict) else []
    for assignment in assignments:
        key = assignment.partition("=")[0].strip()
        if not key.startswith("params."):
            continue
        name = key.split(".")[1]
        if name not in declared:
            raise NetbuilderError(
                f"the spec has no param {excerpt(name)}{unknown_param_hint(name, declared)}",
                Location(f"--set {assignment}"),
            )


def check_search_params(
    search: Any, params: Any, positions: dict[PathKey, Location], source: str
) -> None:
    """Each bare name (or `params.X`) must be a declared param: a typo would search an axis
    that changes nothing. Checked where the params are still known (the resolver)."""
    if not isinstance(search, dict):
        return
    declared = list(params) if isinstance(params, dict) else []
    for key in search:
        name = str(key).removeprefix("params.")
        if "." in name:
            continue  # another --set path: checked when the first trial's spec is read
        if name not in declared:
            raise NetbuilderError(
                f"the search names {excerpt(name)}, which is not a param"
                f"{unknown_param_hint(name, declared)}",
                positions.get((SECTION, KEY, key), Location(source)),
                SECTION,
            )


def index_base(document: SpecDocument) -> int:
    """`index_base: 0 | 1`: how repeated layers are numbered (1: name.1, name.2, ...)."""
    base = document.data.get(INDEX_BASE, 1)
    if base not in (0, 1) or isinstance(base, bool):
        raise NetbuilderError(
            f"expected 0 or 1, got {excerpt(base)}", document.locate((INDEX_BASE,)), INDEX_BASE
        )
    return int(base)


def check_param_name(
    name: Any, builtins: tuple[str, ...], where: Location | None, place: str
) -> None:
    """A param is an ASCII identifier (Python folds a fullwidth `w` into `w`) that does not hide
    a name the language gives itself (a param `input_channels` would never be read)."""
    if not isinstance(name, str) or not ASCII_NAME.fullmatch(name):
        raise NetbuilderError(
            f"parameter name {excerpt(name)} is not an ASCII identifier (letters, digits and _)",
            where,
            place,
        )
    if name in builtins:
        raise NetbuilderError(
            f"parameter '{name}' would hide the built-in name '{name}' "
            f"({', '.join(builtins)} are given); choose another name",
            where,
            place,
        )


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
    format_notes = read_format(out)  # first: a later format may mean other things by the rest
    check_param_overrides(out.data.get("params"), early)
    check_search_params(
        out.data.get(SECTION), out.data.get("params"), out.positions, document.source
    )
    merged = apply_overrides(SpecDocument(out.data, document.source, out.positions), early)
    out = Output(merged.data, merged.positions)
    names = expression_names(out, document.source)
    expander = Expander(names, base=index_base(merged))
    if "layers" in out.data:
        out.data["layers"] = expander.items(out.data["layers"], out, ("layers",), out, ("layers",))
        for edited in chain[provider:]:
            if isinstance(edited.data, dict):
                apply_edits(edited, out, expander)
    notes = format_notes + read_width_multiplier(out)
    out.data.pop("params", None)
    resolved = SpecDocument(
        out.data, document.source, out.positions, merged.overrides, out.expressions, notes
    )
    return apply_overrides(resolved, late)
