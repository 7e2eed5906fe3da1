"""netbuilder: declarative builder for compact CNNs (YAML spec -> validated nn.Module).

The package is laid out as its pipeline: `spec` (YAML, language, schema, validation; no
torch) -> `blocks` + `compiler` (plan on the meta device, checks, modules) -> `report`,
`training`, `export`, `inference` -> `cli`. Reading and validating a spec needs no torch: the
compiler (and torch with it) is imported on first use of `build_model` or `compile_spec`, so a
bad spec file is refused in a blink.
"""

from __future__ import annotations

from typing import Any

from .errors import NetbuilderError
from .spec import Spec, read_spec
from .spec.registry import BLOCKS, Arg, Block, Window, register
from .spec.schema import spec_schema

__all__ = [
    "BLOCKS",
    "Arg",
    "Block",
    "NetbuilderError",
    "Spec",
    "Window",
    "build_model",
    "compile_spec",
    "read_spec",
    "register",
    "spec_schema",
]
__version__ = "0.1.0"
_COMPILER_NAMES = ("build_model", "compile_spec")


def __getattr__(name: str) -> Any:
    if name in _COMPILER_NAMES:
        from . import compiler

        return getattr(compiler, name)
    raise AttributeError(f"module 'netbuilder' has no attribute {name!r}")
