"""Validation of a resolved spec: every schema error, layer-name rule, macro rule and train
section rule becomes a NetbuilderError located at the file, layer and line, all reported at
once. No torch here."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from typing import Any

import jsonschema

from ..errors import NetbuilderError, excerpt, raise_if_any
from ..limits import MAX_INTEGER
from .config import TrainConfig, config_errors
from .document import PathKey, SpecDocument
from .language import check_param_name
from .registry import BLOCKS, BlockDef, Registry
from .schema import SpecValidator, config_schema, spec_schema
from .search import search_errors
from .types import Spec, check_layers, interpret, layer_name_at


def validate_document(
    document: SpecDocument, registry: Registry[BlockDef] = BLOCKS
) -> list[NetbuilderError]:
    """Every schema violation of the document, each located in the file."""
    too_large = list(_oversized_integers(document.data, ()))
    if too_large:
        return [
            NetbuilderError(
                f"{value} is larger than the largest integer a spec may hold, {MAX_INTEGER:,}",
                document.locate(path),
                describe_place(document.data, path) or None,
            )
            for path, value in too_large
        ]
    data = document.data if isinstance(document.data, dict) else {}
    macros = data.get("blocks") if isinstance(data.get("blocks"), dict) else {}
    validator = SpecValidator(spec_schema(registry, macros))
    errors = sorted(
        validator.iter_errors(document.data),
        key=lambda e: (list(map(str, e.absolute_path)), e.validator),
    )
    return [to_netbuilder_error(error, document, registry) for error in errors]


def _oversized_integers(data: Any, path: PathKey) -> Iterator[tuple[PathKey, int]]:
    if isinstance(data, bool):
        return
    if isinstance(data, int) and abs(data) > MAX_INTEGER:
        yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _oversized_integers(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _oversized_integers(value, (*path, index))


def describe_place(data: Any, path: PathKey) -> str:
    """Human form of a data path: `layers[4] (fire4).squeeze`."""
    text = ""
    for depth, key in enumerate(path):
        if isinstance(key, int):
            text += f"[{key}]"
            if depth == 1 and path[0] == "layers":
                name = layer_name_at(data, key)
                text += f" ({name})" if name else ""
        elif depth == 2 and path[0] == "layers" and key in BLOCKS:
            continue  # the block name is already in the layer's name
        else:
            text += f".{key}" if text else str(key)
    return text


def to_netbuilder_error(
    error: jsonschema.ValidationError, document: SpecDocument, registry: Registry[BlockDef]
) -> NetbuilderError:
    path = tuple(error.absolute_path)
    location = document.locate(path)
    message = _quoting_briefly(error)
    schema: dict[str, Any] = dict(error.schema) if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        instance: Any = error.instance  # a mapping, for this validator
        unexpected = sorted(set(instance) - set(schema.get("properties", {})))
        key = unexpected[0]
        location = document.locate_key(path, key)
        message = _unknown_key_message(key, path, error, registry)
    elif error.validator == "required":
        missing = error.message.split("'")[1]
        message = f"missing required {'parameter' if _in_block(path) else 'key'} '{missing}'"
    elif error.validator == "type" and len(path) == 2 and path[0] == "layers":
        message = (
            "a layer maps one block name to its parameters, e.g. "
            f"'- conv_bn: {{out_channels: 8}}'; got {excerpt(error.instance)}"
        )
    elif (
        error.validator == "type"
        and isinstance(error.instance, float)
        and not math.isfinite(error.instance)
    ):
        message = f"expected a finite number, got {excerpt(error.instance)}"
    elif error.validator == "type":
        value = error.validator_value
        wanted = " or ".join(value) if isinstance(value, list) else str(value)
        message = f"expected {_article(wanted)} {wanted}, got {excerpt(error.instance)}"
    elif error.validator == "anyOf" and path[-1:] == ("from",):
        message = (
            "expected a layer name, 'input', a negative index (-1: the layer above) or a "
            f"list of them; got {excerpt(error.instance)}"
        )
    elif error.validator == "anyOf":
        choices: Any = error.validator_value  # the anyOf's list of schemas
        options = " or ".join(_describe(option) for option in choices)
        message = f"expected {options}, got {excerpt(error.instance)}"
    elif error.validator == "minProperties" and path[:1] == ("layers",):
        message = "empty layer; expected one block name, e.g. '- relu: {}'"
    elif error.validator in ("minProperties", "maxProperties") and "description" in schema:
        message = f"expected {schema['description']}; got {excerpt(error.instance)}"
    if path in document.expressions:
        message += f" (from {document.expressions[path]})"
    return NetbuilderError(message, location, describe_place(document.data, path) or None)


def _quoting_briefly(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, with the value it quotes cut to an excerpt."""
    try:
        whole = repr(error.instance)
    except ValueError:  # an integer too long to print; the size check refuses those first
        return error.message
    return error.message.replace(whole, excerpt(error.instance))


def _in_block(path: PathKey) -> bool:
    return len(path) == 3 and path[0] == "layers"


def _unknown_key_message(
    key: str, path: PathKey, error: jsonschema.ValidationError, registry: Registry[BlockDef]
) -> str:
    if len(path) == 2 and path[0] == "layers":
        return registry.unknown_message(str(key))
    known = list(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(known)}"
    what = f"parameter '{key}' of {path[2]}" if _in_block(path) else f"key '{key}'"
    return f"unknown {what}; {hint}"


def _describe(schema: dict[str, Any]) -> str:
    if "const" in schema:
        return repr(schema["const"])
    if schema.get("type") == "null":
        return "null"
    if "enum" in schema:
        return " or ".join(repr(value) for value in schema["enum"])
    if schema.get("type") == "array":
        return f"a list of {schema.get('minItems')} {schema['items'].get('type', 'value')}s"
    kind = schema.get("type", "value")
    bounds = "" if "minimum" not in schema else f" >= {schema['minimum']}"
    return f"{_article(kind)} {kind}{bounds}"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


MACRO_BUILTIN_NAMES = ("in_channels", "in_height", "in_width", "num_classes", "i")


def check_macros(document: SpecDocument, registry: Registry[BlockDef]) -> list[NetbuilderError]:
    """Macro names must not hide a registered block; their parameters are identifiers."""
    macros = document.data.get("blocks") if isinstance(document.data, dict) else None
    errors = []
    for name, macro in (macros or {}).items() if isinstance(macros, dict) else ():
        where = document.locate_key(("blocks",), name)
        if name in registry:
            errors.append(
                NetbuilderError(
                    f"macro '{name}' would hide the block '{name}'; choose another name",
                    where,
                    f"blocks.{name}",
                )
            )
        params = macro.get("params") if isinstance(macro, dict) else None
        for param in params if isinstance(params, dict) else {}:
            try:
                check_param_name(
                    param,
                    MACRO_BUILTIN_NAMES,
                    document.locate_key(("blocks", name, "params"), param),
                    f"blocks.{name}.params",
                )
            except NetbuilderError as error:
                errors.append(error)
    return errors


def validate(document: SpecDocument, registry: Registry[BlockDef] = BLOCKS) -> Spec:
    """Check a document completely and return its Spec, or raise every problem at once."""
    errors = (
        validate_document(document, registry)
        + check_layers(document)
        + check_macros(document, registry)
        + search_errors(document)
    )
    raise_if_any(errors + train_errors(document))
    return interpret(document)


def train_errors(document: SpecDocument) -> list[NetbuilderError]:
    """The train section's own rules, once it and the input have the shapes the schema wants
    (until then, the schema's errors say what is wrong with them)."""
    data = document.data if isinstance(document.data, dict) else {}
    given = data.get("input")
    channels = given.get("channels") if isinstance(given, dict) else None
    train = data.get("train") or {}
    if (
        isinstance(channels, bool)
        or not isinstance(channels, int)
        or not TRAIN_VALIDATOR.is_valid(train)
    ):
        return []
    return config_errors(TrainConfig.from_data(train), channels, document.locate)


TRAIN_VALIDATOR = SpecValidator(config_schema(TrainConfig))
