"""netbuilder: declarative builder for compact CNNs (YAML spec -> validated nn.Module).

Reading and validating a spec needs no torch: the compiler (and torch with it) is imported on
first use of `build_model` or `compile_spec`, so a bad spec file is refused in a blink.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .document import load_spec
from .errors import NetbuilderError
from .language import resolve
from .registry import BLOCKS, Arg, Block, Window, register
from .schema import spec_schema, validate
from .spec import Spec

__all__ = [
    "BLOCKS", "Arg", "Block", "NetbuilderError", "Spec", "Window", "build_model", "compile_spec",
    "read_spec", "register", "spec_schema",
]
__version__ = "0.1.0"
_COMPILER_NAMES = ("build_model", "compile_spec")


def read_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Load, resolve (extends, params, expressions, repeat, edits, `--set` overrides) and
    validate a spec file: the usual first step of every command."""
    return validate(resolve(load_spec(path), overrides or []))


def __getattr__(name: str) -> Any:
    if name in _COMPILER_NAMES:
        from . import compiler

        return getattr(compiler, name)
    raise AttributeError(f"module 'netbuilder' has no attribute {name!r}")
