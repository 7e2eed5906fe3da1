"""netbuilder: declarative builder for compact CNNs (YAML spec -> validated nn.Module).

The package is laid out as its pipeline: `spec` (YAML, language, schema, validation; no
torch) -> `blocks` + `compiler` (plan on the meta device, checks, modules) -> `report`,
`training`, `export`, `inference` -> `cli`. Reading and validating a spec needs no torch: the
compiler (and torch with it) is imported on first use of `build_model` or `compile_spec`, so a
bad spec file is refused in a blink.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NetbuilderError
from .spec import Spec, read_spec
from .spec.bundled import bundled_names
from .spec.registry import BLOCKS, Arg, Block, Window, register
from .spec.schema import spec_schema

if TYPE_CHECKING:
    from torch import nn


def _version() -> str:
    """The installed package's version (pyproject.toml's), where netbuilder is installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("netbuilder")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


__all__ = [
    "BLOCKS",
    "Arg",
    "Block",
    "NetbuilderError",
    "Spec",
    "Window",
    "build_model",
    "compile_spec",
    "create_model",
    "list_models",
    "read_spec",
    "register",
    "spec_schema",
]
__version__ = _version()
_COMPILER_NAMES = ("build_model", "compile_spec")


def list_models(pattern: str = "*") -> list[str]:
    """The bundled specs' names matching a shell-style pattern, as timm's list_models:
    `list_models("squeezenet*")` gives ['squeezenet_v10', 'squeezenet_v11', ...]."""
    return bundled_names(pattern)


def create_model(
    name_or_path: str | Path,
    *,
    num_classes: int | None = None,
    input_channels: int | None = None,
    input_size: int | tuple[int, int] | None = None,
    overrides: Sequence[str] = (),
    pretrained: str | None = None,
) -> nn.Module:
    """The nn.Module of a bundled spec (by name) or a spec file, as timm's create_model:
    `create_model("mobilenet_v3_small", num_classes=10)`. The keywords are `--set` of
    num_classes, input.channels and input.size (after `overrides`); `pretrained` is an
    `--init-from` source (a checkpoint, a state_dict file, torchvision:<Weights>.<NAME>)."""
    assignments = list(overrides)
    for key, value in (
        ("num_classes", num_classes),
        ("input.channels", input_channels),
        ("input.size", input_size),
    ):
        if value is not None:
            text = f"[{value[0]}, {value[1]}]" if isinstance(value, tuple) else str(value)
            assignments.append(f"{key}={text}")
    spec = read_spec(name_or_path, assignments)
    from .compiler import build_model
    from .training.pretrained import initialise_from

    model = build_model(spec)
    if pretrained is not None:
        initialise_from(model, pretrained)
    return model


def __getattr__(name: str) -> Any:
    if name in _COMPILER_NAMES:
        from . import compiler

        return getattr(compiler, name)
    raise AttributeError(f"module 'netbuilder' has no attribute {name!r}")
