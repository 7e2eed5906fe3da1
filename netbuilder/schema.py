"""The spec's JSON Schema (draft 2020-12), generated from the block registry, and validation
that turns each schema error into a NetbuilderError pointing at the file, layer and line."""

from __future__ import annotations

import difflib
import math
import types
from collections.abc import Iterator
from typing import Any, Literal, Union, get_args, get_origin

import jsonschema

from .errors import NetbuilderError, raise_if_any
from .limits import MAX_INTEGER, MAX_LAYERS
from .registry import BLOCKS, NUM_CLASSES, BlockDef, Param, Registry
from .spec import PathKey, Spec, SpecDocument, check_layers, interpret, layer_name_at

DRAFT = "https://json-schema.org/draft/2020-12/schema"
LAYER_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"
DATASETS = ["mnist", "fashion_mnist", "kmnist", "synthetic"]


def _number(doc: str, default: Any = None, minimum: float | None = None, **extra: Any) -> dict:
    schema: dict[str, Any] = {"type": "number", "description": doc, **extra}
    if minimum is not None:
        schema["minimum"] = minimum
    if default is not None:
        schema["default"] = default
    return schema


def _integer(doc: str, default: Any = None, minimum: int | None = 1) -> dict:
    schema = _number(doc, default, minimum)
    schema["type"] = "integer"
    return schema


def _object(properties: dict[str, dict], doc: str, required: list[str] | None = None) -> dict:
    schema: dict[str, Any] = {"type": "object", "description": doc, "properties": properties,
                              "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


TRAIN_SCHEMA = _object(
    {
        "dataset": {"enum": DATASETS, "default": "mnist", "description": "torchvision dataset"},
        "epochs": _integer("passes over the training set", 10),
        "batch_size": _integer("training batch size", 128),
        "eval_batch_size": _integer("batch size for evaluation", 1000),
        "seed": _integer("seed for weights, shuffling and augmentation", 1, minimum=0),
        "optimizer": _object(
            {
                "name": {"enum": ["sgd", "adam", "adamw"], "default": "sgd",
                         "description": "optimizer"},
                "lr": _number("learning rate (peak rate for one-cycle)", 0.01,
                              exclusiveMinimum=0),
                "momentum": _number("SGD momentum", 0.9, 0),
                "nesterov": {"type": "boolean", "default": False,
                             "description": "Nesterov momentum (SGD)"},
                "weight_decay": _number("L2 weight decay", 0.0, 0),
            },
            "optimizer and its hyper-parameters",
        ),
        "schedule": _object(
            {
                "name": {"enum": ["none", "step", "cosine", "onecycle"], "default": "none",
                         "description": "learning-rate schedule"},
                "step_size": _integer("epochs between decays (step)", 5),
                "gamma": _number("decay factor (step)", 0.1, 0),
                "pct_start": _number("fraction of steps spent warming up (onecycle)", 0.25, 0,
                                     maximum=1),
                "warmup_epochs": _number("linear warm-up epochs before the schedule", 0, 0),
            },
            "learning-rate schedule, stepped every batch",
        ),
        "label_smoothing": _number("label smoothing for cross-entropy", 0.0, 0, maximum=1),
        "transforms": _object(
            {
                "normalize": _object(
                    {"mean": {"type": "array", "items": {"type": "number"}, "minItems": 1,
                              "default": [0.1307]},
                     "std": {"type": "array", "items": {"type": "number",
                                                        "exclusiveMinimum": 0},
                             "minItems": 1, "default": [0.3081]}},
                    "per-channel mean and std after scaling pixels to [0, 1]",
                ),
                "augment": _object(
                    {"rotation": _number("max rotation in degrees", 0.0, 0),
                     "translate": _number("max shift as a fraction of the size", 0.0, 0,
                                          maximum=1),
                     "scale": {"type": "array", "items": {"type": "number",
                                                          "exclusiveMinimum": 0},
                               "minItems": 2, "maxItems": 2, "default": [1.0, 1.0],
                               "description": "random zoom range [min, max]"}},
                    "random affine augmentation of training batches",
                ),
            },
            "batch transforms; images are resized to the spec's input size automatically",
        ),
        "compile": {"type": "boolean", "default": False, "description": "torch.compile the model"},
        "channels_last": {"type": "boolean", "default": False,
                          "description": "channels-last memory format"},
        "amp": {"type": "boolean", "default": True,
                "description": "mixed precision (CUDA only)"},
    },
    "how `netbuilder train` trains this spec; every field has a default",
)


def param_schema(param: Param) -> dict[str, Any]:
    """JSON Schema of one block parameter, from its declared type and Arg metadata."""
    base = param.type
    nullable = get_origin(base) in (Union, types.UnionType) and type(None) in get_args(base)
    if nullable:
        base = next(t for t in get_args(base) if t is not type(None))
    if get_origin(base) is Literal:
        schema: dict[str, Any] = {"enum": list(get_args(base))}
    else:
        schema = {"type": {int: "integer", float: "number", bool: "boolean", str: "string"}[base]}
        for key, value in (("minimum", param.arg.minimum), ("maximum", param.arg.maximum),
                           ("exclusiveMaximum", param.arg.exclusive_maximum)):
            if value is not None:
                schema[key] = value
    if param.arg.channels:
        schema = {"anyOf": [schema, {"const": NUM_CLASSES}]}
    if nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    schema["description"] = param.arg.doc
    if not param.required:
        schema["default"] = param.default
    return schema


def block_schema(block: BlockDef) -> dict[str, Any]:
    properties = {p.name: param_schema(p) for p in block.params}
    required = [p.name for p in block.params if p.required]
    schema = _object(properties, block.doc, required)
    if not required:
        schema["type"] = ["object", "null"]  # `- gap:` and `- gap: {}` both mean "no parameters"
    return schema


def spec_schema(registry: Registry[BlockDef] = BLOCKS) -> dict[str, Any]:
    """The whole spec's schema; regenerated from the registry so plugins are covered."""
    layer_properties: dict[str, Any] = {
        "name": {"type": "string", "pattern": LAYER_NAME_PATTERN,
                 "description": "layer name (default: block name + running number)"},
    }
    layer_properties |= {b.name: {"$ref": f"#/$defs/block.{b.name}"} for b in registry}
    return {
        "$schema": DRAFT,
        "title": "netbuilder spec",
        "type": "object",
        "required": ["name", "input", "num_classes", "layers"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "description": "model name"},
            "description": {"type": "string", "description": "free text"},
            "input": _object(
                {"channels": _integer("image channels (1 for MNIST, 3 for RGB)"),
                 "size": {"anyOf": [{"type": "integer", "minimum": 1},
                                    {"type": "array", "items": {"type": "integer", "minimum": 1},
                                     "minItems": 2, "maxItems": 2}],
                          "description": "square side, or [height, width]"}},
                "one sample's shape", ["channels", "size"],
            ),
            "num_classes": _integer("classes; channel parameters may say 'num_classes'"),
            "width_multiplier": _number("scales every channel parameter (MobileNet's alpha)",
                                        1.0, exclusiveMinimum=0),
            "layers": {"type": "array", "minItems": 1, "maxItems": MAX_LAYERS,
                       "items": {"$ref": "#/$defs/layer"},
                       "description": "blocks in order; input channels are inferred"},
            "train": {"$ref": "#/$defs/train"},
        },
        "$defs": {
            "layer": {"type": "object", "properties": layer_properties,
                      "additionalProperties": False, "minProperties": 1,
                      "description": "one block name mapped to its parameters"},
            "train": TRAIN_SCHEMA,
            **{f"block.{b.name}": block_schema(b) for b in registry},
        },
    }


def schema_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The defaults an object schema declares, nested objects included."""
    out: dict[str, Any] = {}
    for key, prop in schema.get("properties", {}).items():
        if prop.get("type") == "object":
            out[key] = schema_defaults(prop)
        elif "default" in prop:
            out[key] = prop["default"]
    return out


def validate_document(
    document: SpecDocument, registry: Registry[BlockDef] = BLOCKS
) -> list[NetbuilderError]:
    """Every schema violation of the document, each located in the file."""
    too_large = list(_oversized_integers(document.data, ()))
    if too_large:
        return [NetbuilderError(f"{value} is larger than the largest integer a spec may hold, "
                                f"{MAX_INTEGER:,}", document.locate(path),
                                describe_place(document.data, path) or None)
                for path, value in too_large]
    validator = SpecValidator(spec_schema(registry))
    errors = sorted(validator.iter_errors(document.data),
                    key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    return [_to_netbuilder_error(error, document, registry) for error in errors]


def _is_integer(_checker: Any, instance: Any) -> bool:
    """Only whole numbers written as integers: `28.0` would reach range() or torch as a float."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_number(_checker: Any, instance: Any) -> bool:
    """Integers and finite floats: a nan or inf passes every range check, so refuse it here."""
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and math.isfinite(instance))


SpecValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_number}),
)


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


def _to_netbuilder_error(
    error: jsonschema.ValidationError, document: SpecDocument, registry: Registry[BlockDef]
) -> NetbuilderError:
    path = tuple(error.absolute_path)
    location = document.locate(path)
    message = error.message
    if error.validator == "additionalProperties":
        unexpected = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        key = unexpected[0]
        location = document.locate_key(path, key)
        message = _unknown_key_message(key, path, error, registry)
    elif error.validator == "required":
        missing = error.message.split("'")[1]
        message = f"missing required {'parameter' if _in_block(path) else 'key'} '{missing}'"
    elif error.validator == "type" and len(path) == 2 and path[0] == "layers":
        message = ("a layer maps one block name to its parameters, e.g. "
                   f"'- conv_bn: {{out_channels: 8}}'; got {error.instance!r}")
    elif error.validator == "type" and isinstance(error.instance, float) and not math.isfinite(
            error.instance):
        message = f"expected a finite number, got {error.instance!r}"
    elif error.validator == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        message = f"expected {_article(wanted)} {wanted}, got {error.instance!r}"
    elif error.validator == "anyOf":
        options = " or ".join(_describe(option) for option in error.validator_value)
        message = f"expected {options}, got {error.instance!r}"
    elif error.validator == "minProperties":
        message = "empty layer; expected one block name, e.g. '- relu: {}'"
    return NetbuilderError(message, location, describe_place(document.data, path) or None)


def _in_block(path: PathKey) -> bool:
    return len(path) == 3 and path[0] == "layers"


def _unknown_key_message(
    key: str, path: PathKey, error: jsonschema.ValidationError, registry: Registry[BlockDef]
) -> str:
    if len(path) == 2 and path[0] == "layers":
        return registry.unknown_message(str(key))
    known = list(error.schema.get("properties", {}))
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(known)}"
    what = f"parameter '{key}' of {path[2]}" if _in_block(path) else f"key '{key}'"
    return f"unknown {what}; {hint}"


def _describe(schema: dict[str, Any]) -> str:
    if "const" in schema:
        return repr(schema["const"])
    if schema.get("type") == "null":
        return "null"
    if schema.get("type") == "array":
        return f"a list of {schema.get('minItems')} {schema['items'].get('type', 'value')}s"
    kind = schema.get("type", "value")
    bounds = "" if "minimum" not in schema else f" >= {schema['minimum']}"
    return f"{_article(kind)} {kind}{bounds}"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def validate(document: SpecDocument, registry: Registry[BlockDef] = BLOCKS) -> Spec:
    """Check a document completely and return its Spec, or raise every problem at once."""
    errors = validate_document(document, registry) + check_layers(document)
    raise_if_any(errors)
    return interpret(document)
