"""The block registry: a name -> builder table that users extend with one decorator.

A block declares its parameters once, in its builder's signature (`Annotated[int, Arg(...)]`);
that single declaration drives the JSON Schema, the `blocks` listing and the argument check.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, get_args, get_origin

from ..errors import NetbuilderError

Shape = tuple[int, ...]  # one sample's shape: (C, H, W) for feature maps, (F,) once flattened
NUM_CLASSES = "num_classes"  # a channel parameter may say this instead of a number


def format_shape(shape: Shape | None) -> str:
    """One sample's shape as every message and report prints it: 6x26x26, or 10 once flat;
    '-' for a shape nobody saw (a module the forward never called)."""
    return "-" if shape is None else "x".join(str(size) for size in shape)


T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object table with helpful errors; the only module-level mutable state we keep.

    `builtins` names a module whose import registers the built-in entries; it is imported on
    first use, so reading a spec file needs neither it nor what it imports (torch).
    """

    def __init__(self, kind: str, builtins: str | None = None):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._builtins = builtins

    def _load_builtins(self) -> None:
        if self._builtins is not None:
            module, self._builtins = self._builtins, None
            importlib.import_module(module)

    def add(self, name: str, entry: T, origin: str) -> None:
        self._load_builtins()  # a plugin's name must not clash with a built-in loaded later
        if name in self._entries:
            raise NetbuilderError(
                f"{self.kind} '{name}' is already registered by {self._origins[name]}; "
                f"choose another name for the one in {origin}"
            )
        self._entries[name] = entry
        self._origins[name] = origin

    def remove(self, name: str) -> None:
        """Forget an entry (tests and plugin reloads)."""
        self._entries.pop(name, None)
        self._origins.pop(name, None)

    def get(self, name: str) -> T:
        self._load_builtins()
        try:
            return self._entries[name]
        except KeyError:
            raise NetbuilderError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._entries, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(self.names())}"
        return f"unknown {self.kind} '{name}'; {hint}"

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries[name] for name in self.names())


@dataclass(frozen=True)
class Arg:
    """Metadata of one declared value (a block parameter or a train config field), attached
    with `Annotated[type, Arg(...)]`. Bounds apply to a number, or to each item of a list."""

    doc: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    channels: bool = False  # a channel count: may say 'num_classes'
    min_items: int | None = None  # for a list: its length bounds
    max_items: int | None = None


@dataclass(frozen=True)
class Param:
    """One declared parameter of a block, read from its builder's signature."""

    name: str
    type: Any  # int, float, bool, str or a Literal[...]
    arg: Arg
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def type_name(self) -> str:
        if get_origin(self.type) is Literal:
            return " | ".join(repr(v) for v in get_args(self.type))
        name = getattr(self.type, "__name__", str(self.type))
        return f"{name} | '{NUM_CLASSES}'" if self.arg.channels else name


@dataclass(frozen=True)
class Window:
    """How a block maps input positions to output positions, for receptive-field arithmetic
    (along the height) and the stride check of `build --input-size` (both directions). The
    kernel is the span one output sees: dilation * (kernel - 1) + 1."""

    kernel: int = 1
    stride: int = 1
    padding: int = 0
    kernel_w: int | None = None  # the width's, where it differs from the height's
    stride_w: int | None = None
    padding_w: int | None = None

    def along(self, axis: int) -> tuple[int, int, int]:
        """(kernel, stride, padding) along the height (0) or the width (1)."""
        if axis == 0:
            return self.kernel, self.stride, self.padding
        return (
            self.kernel if self.kernel_w is None else self.kernel_w,
            self.stride if self.stride_w is None else self.stride_w,
            self.padding if self.padding_w is None else self.padding_w,
        )


@dataclass
class Block:
    """What a builder returns: the module, the shape it produces and its sliding window."""

    module: Any  # torch.nn.Module; typed loosely so this module does not import torch
    shape: Shape
    window: Window = field(default_factory=Window)


Builder = Callable[..., Block]


@dataclass(frozen=True)
class BlockDef:
    """A registered block: its name, builder, documentation and declared parameters."""

    name: str
    builder: Builder
    doc: str
    params: tuple[Param, ...]
    merge: bool = False  # takes several inputs: its builder gets {layer name: shape}

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def build(self, inputs: Shape | dict[str, Shape], args: dict[str, Any]) -> Block:
        return self.builder(inputs, **args)


BLOCKS: Registry[BlockDef] = Registry("block", builtins="netbuilder.blocks")


def register(
    name: str, registry: Registry[BlockDef] = BLOCKS, *, merge: bool = False
) -> Callable[[Builder], Builder]:
    """Decorator: `@register("fire")` on `def fire(in_shape, squeeze: Annotated[...]) -> Block`.

    A merge block (`merge=True`, such as `add`) reads several layers: its builder's first
    argument is then {input layer name: shape}, in the order the spec's `from:` lists them.
    """

    def decorate(builder: Builder) -> Builder:
        definition = describe_builder(name, builder, merge)
        registry.add(name, definition, f"{builder.__module__}.{builder.__qualname__}")
        return builder

    return decorate


def describe_builder(name: str, builder: Builder, merge: bool = False) -> BlockDef:
    """Read a builder's parameters from its signature; refuse undocumented ones."""
    hints = typing.get_type_hints(builder, include_extras=True)
    signature = inspect.signature(builder)
    params = []
    for position, parameter in enumerate(signature.parameters.values()):
        if position == 0:
            continue  # the inferred input shape, never written in a spec
        hint = hints.get(parameter.name)
        metadata = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Arg)]
        if not metadata:
            raise NetbuilderError(
                f"block '{name}' ({builder.__module__}.{builder.__qualname__}): parameter "
                f"'{parameter.name}' needs a declaration, Annotated[type, Arg(\"what it is\")]"
            )
        params.append(Param(parameter.name, get_args(hint)[0], metadata[0], parameter.default))
    doc = inspect.getdoc(builder) or ""
    return BlockDef(name, builder, doc.split("\n\n")[0].replace("\n", " "), tuple(params), merge)
