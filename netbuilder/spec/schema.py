"""The spec's JSON Schema (draft 2020-12), generated from the block registry and the train
config's declaration: the schema validation checks a resolved spec against, and (`editor=True`)
the schema of a spec as written, for editors. No torch here."""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Literal, get_args, get_origin, get_type_hints

import jsonschema

from ..limits import MAX_LAYERS
from .config import TrainConfig, is_union, unwrap
from .registry import BLOCKS, NUM_CLASSES, Arg, BlockDef, Param, Registry
from .requires import Requirements
from .search import SEARCH_SCHEMA

DRAFT = "https://json-schema.org/draft/2020-12/schema"
LAYER_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"  # dots: group members
JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def _integer(doc: str, minimum: int = 1) -> dict[str, Any]:
    return {"type": "integer", "description": doc, "minimum": minimum}


def _object(
    properties: dict[str, dict[str, Any]], doc: str, required: list[str] | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "description": doc,
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def value_schema(kind: Any, arg: Arg) -> dict[str, Any]:
    """JSON Schema of one declared value (block parameter or config field) from its type and
    Arg: int/float/bool/str, Literal choices, lists and fixed-size tuples, `X | None`."""
    if is_union(kind):
        return {
            "anyOf": [
                {"type": "null"} if member is type(None) else value_schema(member, arg)
                for member in get_args(kind)
            ]
        }
    if get_origin(kind) is Literal:
        return {"enum": list(get_args(kind))}
    if get_origin(kind) in (list, tuple):
        members = get_args(kind)
        schema: dict[str, Any] = {"type": "array", "items": value_schema(members[0], arg)}
        fixed = len(members) if get_origin(kind) is tuple and Ellipsis not in members else None
        for key, size in (
            ("minItems", arg.min_items or fixed),
            ("maxItems", arg.max_items or fixed),
        ):
            if size is not None:
                schema[key] = size
        return schema
    schema = {"type": JSON_TYPES[kind]}
    for key, value in (
        ("minimum", arg.minimum),
        ("maximum", arg.maximum),
        ("exclusiveMinimum", arg.exclusive_minimum),
        ("exclusiveMaximum", arg.exclusive_maximum),
    ):
        if value is not None and kind in (int, float):
            schema[key] = value
    if arg.channels:
        schema = {"anyOf": [schema, {"const": NUM_CLASSES}]}
    return schema


def param_schema(param: Param) -> dict[str, Any]:
    """JSON Schema of one block parameter, from its declared type and Arg metadata."""
    schema = {**value_schema(param.type, param.arg), "description": param.arg.doc}
    if not param.required:
        schema["default"] = param.default
    return schema


def config_schema(cls: type) -> dict[str, Any]:
    """JSON Schema of a config dataclass (nested ones become nested objects), with each field's
    Arg doc and its default: the `train` section is generated from `TrainConfig` this way."""
    hints = get_type_hints(cls, include_extras=True)
    defaults = cls()
    properties = {}
    for item in dataclasses.fields(cls):
        kind, arg = unwrap(hints[item.name])
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            properties[item.name] = config_schema(kind)
            continue
        if arg is None:
            raise TypeError(f"{cls.__name__}.{item.name} needs Annotated[type, Arg(doc)]")
        default = getattr(defaults, item.name)
        properties[item.name] = {
            **value_schema(kind, arg),
            "description": arg.doc,
            "default": list(default) if isinstance(default, tuple) else default,
        }
    return _object(properties, (inspect.getdoc(cls) or "").split("\n")[0])


def block_schema(block: BlockDef) -> dict[str, Any]:
    properties = {p.name: param_schema(p) for p in block.params}
    required = [p.name for p in block.params if p.required]
    schema = _object(properties, block.doc, required)
    if not required:
        schema["type"] = ["object", "null"]  # `- gap:` and `- gap: {}` both mean "no parameters"
    return schema


def spec_schema(
    registry: Registry[BlockDef] = BLOCKS,
    macros: dict[str, Any] | None = None,
    editor: bool = False,
) -> dict[str, Any]:
    """The whole spec's schema; regenerated from the registry so plugins are covered.

    `macros` (a spec's `blocks:` section) adds its macros as layer blocks. `editor=True` gives
    the schema of a spec as written, for editors: it also knows `extends`, `params`, the edits,
    `repeat`/`when`/`sequence`, and accepts a ${...} expression wherever a value goes.
    """
    source = {
        "anyOf": [
            {"type": "string", "pattern": LAYER_NAME_PATTERN},
            {"type": "integer", "maximum": -1},
        ]
    }
    layer_properties: dict[str, Any] = {
        "name": {
            "type": "string",
            "pattern": LAYER_NAME_PATTERN,
            "description": "layer name (default: block name + running number)",
        },
        "from": {
            "anyOf": [source, {"type": "array", "items": source, "minItems": 1}],
            "description": "the layer(s) this one reads: a name, 'input', a relative "
            "index (-1 is the previous layer, the default) or a list",
        },
    }
    layer_properties |= {b.name: {"$ref": f"#/$defs/block.{b.name}"} for b in registry}
    layer_properties |= {
        name: macro_schema(name, macro)
        for name, macro in (macros or {}).items()
        if isinstance(macro, dict)
    }
    properties: dict[str, Any] = {
        "name": {"type": "string", "minLength": 1, "description": "model name"},
        "description": {"type": "string", "description": "free text"},
        "input": _object(
            {
                "channels": _integer("image channels (1 for MNIST, 3 for RGB)"),
                "size": {
                    "anyOf": [
                        {"type": "integer", "minimum": 1},
                        {
                            "type": "array",
                            "items": {"type": "integer", "minimum": 1},
                            "minItems": 2,
                            "maxItems": 2,
                        },
                    ],
                    "description": "square side, or [height, width]",
                },
            },
            "one sample's shape",
            ["channels", "size"],
        ),
        "num_classes": _integer("classes; channel parameters may say 'num_classes'"),
        "index_base": {
            "enum": [0, 1],
            "default": 1,
            "description": "how repeated layers are "
            "numbered: from 1 (stage.1, stage.2) or, as PyTorch does, from 0",
        },
        "layers": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_LAYERS,
            "items": {"$ref": "#/$defs/layer"},
            "description": "blocks in order; input channels are inferred",
        },
        "train": {"$ref": "#/$defs/train"},
        "requires": config_schema(Requirements),
        "search": SEARCH_SCHEMA,
        "blocks": {
            "type": "object",
            "additionalProperties": {"$ref": "#/$defs/macro"},
            "description": "macros: blocks made of other blocks, used like them",
        },
    }
    schema = {
        "$schema": DRAFT,
        "title": "netbuilder spec",
        "type": "object",
        "required": ["name", "input", "num_classes", "layers"],
        "additionalProperties": False,
        "properties": properties,
        "$defs": {
            "layer": {
                "type": "object",
                "properties": layer_properties,
                "additionalProperties": False,
                "minProperties": 1,
                "description": "one block name mapped to its parameters",
            },
            "train": config_schema(TrainConfig),
            "macro": MACRO_SCHEMA,
            **{f"block.{b.name}": block_schema(b) for b in registry},
        },
    }
    return as_written(schema) if editor else schema


MACRO_SCHEMA = _object(
    {
        "doc": {"type": "string", "description": "what the macro builds"},
        "params": {
            "type": "object",
            "description": "its parameters and their defaults (null: the parameter is required)",
        },
        "layers": {
            "type": "array",
            "minItems": 1,
            "description": "its layers; `input` is the macro's input",
        },
    },
    "a block made of other blocks, with its own parameters",
    ["layers"],
)


def macro_schema(name: str, macro: dict[str, Any]) -> dict[str, Any]:
    """A macro's parameters as a layer block's: any value; null defaults are required."""
    given = macro.get("params")
    params: dict[str, Any] = given if isinstance(given, dict) else {}
    schema = _object(
        {key: {"description": f"parameter of macro {name}"} for key in params},
        str(macro.get("doc") or f"macro {name}"),
        [key for key, value in params.items() if value is None],
    )
    if not schema.get("required"):
        schema["type"] = ["object", "null"]
    return schema


EXPRESSION = {"type": "string", "pattern": r"\$\{.*\}", "description": "a ${...} expression"}
LANGUAGE = {
    "netbuilder": {"enum": [1], "description": "the spec format this file is written in"},
    "extends": {"type": "string", "description": "a spec file this one changes (relative path)"},
    "params": {"type": "object", "description": "named values for ${...} expressions"},
    "override": {"type": "object", "description": "layer name -> parameters to change"},
    "insert": {"type": "array", "description": "[{before|after: layer, layers: [...]}]"},
    "remove": {"type": "array", "items": {"type": "string"}, "description": "layer names"},
}
ITEM = {
    "repeat": {"description": "how many copies (a whole number or ${...})"},
    "when": {"description": "keep the item only where this ${...} holds"},
    "sequence": {"type": "array", "description": "a group of layers (needs a name)"},
}


def as_written(schema: Any) -> Any:
    """The schema of a spec as written: every typed value may be a ${...} expression, and the
    language's own keys are known."""
    if isinstance(schema, list):
        return [as_written(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: as_written(value) for key, value in schema.items()}
    if schema.get("title") == "netbuilder spec":
        out["properties"] = {**out["properties"], **LANGUAGE}
        out["required"] = ["layers"]  # the rest may come from `extends`
        out["$defs"]["layer"]["properties"] |= ITEM
        out["$defs"]["layer"]["additionalProperties"] = True  # a spec's own macros
    if any(key in schema for key in ("type", "enum", "const")) and "properties" not in schema:
        return {"anyOf": [out, EXPRESSION]}
    return out


def _is_integer(_checker: Any, instance: Any) -> bool:
    """Only whole numbers written as integers: `28.0` would reach range() or torch as a float."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_number(_checker: Any, instance: Any) -> bool:
    """Integers and finite floats: a nan or inf passes every range check, so refuse it here."""
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and math.isfinite(instance))


SpecValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_number}
    ),
)
