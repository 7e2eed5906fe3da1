"""netbuilder: declarative builder for compact CNNs (YAML spec -> validated nn.Module)."""

from __future__ import annotations

from pathlib import Path

from .compiler import build_model, compile_spec
from .errors import NetbuilderError
from .registry import BLOCKS, Arg, Block, Window, register
from .schema import spec_schema, validate
from .spec import Spec, apply_overrides, load_spec

__all__ = [
    "BLOCKS", "Arg", "Block", "NetbuilderError", "Spec", "Window", "build_model", "compile_spec",
    "read_spec", "register", "spec_schema",
]
__version__ = "0.1.0"


def read_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Load, override and validate a spec file: the usual first step of every command."""
    return validate(apply_overrides(load_spec(path), overrides or []))
