"""Macros: a spec's own blocks, made of other blocks (its `blocks:` section).

    blocks:
      fire_block:
        params: {squeeze: null, expand: 64}          # null: required
        layers:
          - conv: {out_channels: "${squeeze}", kernel_size: 1}
            name: squeeze
          - ...
    layers:
      - fire_block: {squeeze: 16}
        name: fire2                                  # its layers: fire2.squeeze, ...

A macro is expanded where it is used, once its input's shape is known: its ${...} expressions
see its parameters, `in_channels`, `in_height`, `in_width` and `num_classes`; inside it, `from:`
names its own layers, `input` is its input, and its output is its last layer's. Each expanded
layer is checked against its block's schema like a layer of the spec. No torch here.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from ..errors import Location, NetbuilderError, raise_if_any
from ..spec.document import SpecDocument
from ..spec.expansion import Budget, Expander, Output
from ..spec.registry import Registry, Shape, format_shape
from ..spec.schema import SpecValidator, spec_schema
from ..spec.sources import unknown_layer
from ..spec.types import Macro, block_key
from ..spec.validate import to_netbuilder_error
from .plan import Node


@dataclass
class Expansion:
    """What every macro use of one compile shares: the budget of layer instances (a macro
    using another twice, twenty deep, would otherwise make millions) and the validator of an
    expanded layer, built once."""

    registry: Registry[Any]
    macros: dict[str, Macro]
    base: int = 1  # the spec's index_base, for repeats inside macros
    budget: Budget = field(default_factory=Budget)
    _validator: Any = None
    _valid: set[str] = field(default_factory=set)  # layers (by content) that passed already
    _bodies: dict[str, Output] = field(default_factory=dict)  # each macro's own positions

    def body(self, macro: Macro) -> Output:
        """The macro's body with only its own positions (not the whole spec's, per use)."""
        if macro.name not in self._bodies:
            size = len(macro.path)
            self._bodies[macro.name] = Output(
                positions={
                    path: where
                    for path, where in macro.document.positions.items()
                    if path[:size] == macro.path
                }
            )
        return self._bodies[macro.name]

    @property
    def validator(self) -> Any:
        if self._validator is None:
            self._validator = layer_validator(self.registry, self.macros)
        return self._validator

    def errors(self, layer: Any, expanded: Output, index: int) -> list[NetbuilderError]:
        """`layer_errors`, remembering the layers that passed: the instances of one macro are
        mostly alike, and each would otherwise be checked against the schema again."""
        key = _content_key(layer)
        if key in self._valid:
            return []
        errors = layer_errors(layer, expanded, index, self.registry, self.validator)
        if not errors:
            self._valid.add(key)
        return errors


def _content_key(layer: Any) -> str:
    """What a layer says apart from its name and (linked, well-formed) sources."""
    if not isinstance(layer, dict):
        return repr(layer)
    sources = layer.get("from")
    names = sources if isinstance(sources, list) else [sources]
    linked = all(isinstance(name, str) for name in names) and sources != []
    content = {key: value for key, value in layer.items() if key != "name"}
    if linked:
        content["from"] = "<linked>" if isinstance(sources, str) else ["<linked>"]
    return json.dumps(content, sort_keys=True, default=repr)


def macro_nodes(
    node: Node,
    macro: Macro,
    in_shape: Shape,
    num_classes: int,
    stack: tuple[str, ...],
    known: Collection[str],
    expansion: Expansion,
) -> list[Node]:
    """The nodes a use of `macro` stands for, named `<layer>.<inner layer>`."""
    if macro.name in stack:
        chain = " -> ".join([*stack, macro.name])
        raise NetbuilderError(
            f"macro '{macro.name}' uses itself ({chain})", node.location, node.where
        )
    if len(node.inputs) != 1:
        raise NetbuilderError(
            f"macro '{macro.name}' reads one layer; merge the others first",
            node.location,
            node.where,
        )
    if len(in_shape) != 3:
        raise NetbuilderError(
            f"macro '{macro.name}' needs a feature map but gets the flat "
            f"shape {format_shape(in_shape)}",
            node.location,
            node.where,
        )
    names = {
        **{key: value for key, value in macro.params.items() if value is not None},
        **node.params,
        "in_channels": in_shape[0],
        "in_height": in_shape[1],
        "in_width": in_shape[2],
        "num_classes": num_classes,
    }
    body = expansion.body(macro)
    expanded = Output()
    path = (*macro.path, "layers")
    layers = Expander(names, budget=expansion.budget, base=expansion.base).items(
        macro.layers, body, path, expanded, (), prefix=f"{node.name}.", entry=node.inputs[0]
    )
    if not layers:
        raise NetbuilderError(
            f"macro '{macro.name}' has no layers here (every `when` is false)",
            node.location,
            node.where,
        )
    raise_if_any(
        [
            error
            for index, layer in enumerate(layers)
            for error in expansion.errors(layer, expanded, index)
        ]
    )
    inner: list[Node] = []
    for index, layer in enumerate(layers):
        block = str(block_key(layer))  # one, after layer_errors
        where = expanded.positions.get((index,), node.location)
        label = f"{node.where.split(' > ')[0]} > {layer['name']}"  # the spec's layer, the full name
        sources = _sources(layer, inner, node.inputs[0], known, where, label)
        inner.append(Node(layer["name"], block, dict(layer[block] or {}), sources, where, label))
    return inner


def layer_validator(registry: Registry[Any], macros: dict[str, Macro]) -> Any:
    """The spec schema's validator, with nothing required at the top: it checks one layer."""
    schema = spec_schema(
        registry, {name: {"params": m.params, "layers": m.layers} for name, m in macros.items()}
    )
    schema["required"] = []
    return SpecValidator(schema)


def layer_errors(
    layer: Any, expanded: Output, index: int, registry: Registry[Any], validator: Any
) -> list[NetbuilderError]:
    """A macro's expanded layer checked as a spec's layer is, with the same messages."""
    data = {"layers": [layer]}
    if validator.is_valid(data):
        return []
    source = str((expanded.positions.get((index,)) or Location()).file or "<macro>")
    positions = {
        ("layers", 0, *rest[1:]): where
        for rest, where in expanded.positions.items()
        if rest[:1] == (index,)
    }
    document = SpecDocument(data, source, positions)
    errors = [
        to_netbuilder_error(error, document, registry) for error in validator.iter_errors(data)
    ]
    return [
        NetbuilderError(e.message, e.location, (e.where or "").replace("layers[0] ", ""))
        for e in errors
    ]


def _sources(
    layer: dict[str, Any],
    inner: list[Node],
    entry: str,
    known: Collection[str],
    where: Any,
    label: str,
) -> tuple[str, ...]:
    """`from:` of a macro's layer, already linked by the spec's rule (`spec.sources`): the
    macro's own earlier layers, its input, or an earlier layer of the spec, which must exist."""
    value = layer.get("from")
    if value is None:
        return (inner[-1].name if inner else entry,)
    sources = value if isinstance(value, list) else [value]
    own = [node.name for node in inner]
    for source in sources:
        if source != entry and source not in own and source not in known:
            raise unknown_layer(source, [*own, *sorted(known)]).with_context(where, f"{label}.from")
    return tuple(sources)
