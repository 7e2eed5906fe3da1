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

from typing import Any

from ..errors import Location, NetbuilderError, raise_if_any
from ..spec.expansion import Expander, Output
from ..spec.registry import BLOCKS, Registry, Shape, format_shape
from ..spec.sources import unknown_layer
from ..spec.types import Macro, block_key
from .plan import Node


def macro_nodes(
    node: Node,
    macro: Macro,
    in_shape: Shape,
    num_classes: int,
    stack: tuple[str, ...],
    known: set[str],
    registry: Registry[Any] = BLOCKS,
    macros: dict[str, Macro] | None = None,
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
    body = Output(positions=macro.document.positions)
    expanded = Output()
    path = (*macro.path, "layers")
    layers = Expander(names).items(
        macro.layers, body, path, expanded, (), prefix=f"{node.name}.", entry=node.inputs[0]
    )
    if not layers:
        raise NetbuilderError(
            f"macro '{macro.name}' has no layers here (every `when` is false)",
            node.location,
            node.where,
        )
    validator = layer_validator(registry, macros or {})  # once per instance, not per layer
    raise_if_any(
        [
            error
            for index, layer in enumerate(layers)
            for error in layer_errors(layer, expanded, index, registry, validator)
        ]
    )
    inner: list[Node] = []
    for index, layer in enumerate(layers):
        block = str(block_key(layer))  # one, after layer_errors
        where = expanded.positions.get((index,), node.location)
        label = f"{node.where} > {layer['name']}"
        sources = _sources(layer, inner, node.inputs[0], known, where, label)
        inner.append(Node(layer["name"], block, dict(layer[block] or {}), sources, where, label))
    return inner


def layer_validator(registry: Registry[Any], macros: dict[str, Macro]) -> Any:
    """The spec schema's validator, with nothing required at the top: it checks one layer."""
    from ..spec.schema import SpecValidator, spec_schema  # schema imports this module

    schema = spec_schema(
        registry, {name: {"params": m.params, "layers": m.layers} for name, m in macros.items()}
    )
    schema["required"] = []
    return SpecValidator(schema)


def layer_errors(
    layer: Any, expanded: Output, index: int, registry: Registry[Any], validator: Any
) -> list[NetbuilderError]:
    """A macro's expanded layer checked as a spec's layer is, with the same messages."""
    from ..spec.document import SpecDocument  # schema imports this module: import on use
    from ..spec.validate import to_netbuilder_error

    source = str((expanded.positions.get((index,)) or Location()).file or "<macro>")
    data = {"layers": [layer]}
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
    layer: dict[str, Any], inner: list[Node], entry: str, known: set[str], where: Any, label: str
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
