"""The spec, from YAML to a validated `Spec`: document loading with line positions (`document`),
the language (`expressions`, `expansion`, `edits`, `language`, `sources`, `overrides`), the
block registry and the train section's declaration (`registry`, `config`, `datasets`), the
JSON Schema generated from them (`schema`) and validation (`validate`). No module here imports
torch: a spec is read and checked before any model exists.
"""

from __future__ import annotations

from pathlib import Path

from .bundled import find_spec_file
from .document import load_spec
from .language import resolve
from .types import Spec
from .validate import validate

__all__ = ["Spec", "load_spec", "read_spec", "resolve", "validate"]


def read_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Load, resolve (extends, params, expressions, repeat, edits, `--set` overrides) and
    validate a spec file, or a bundled spec by name: the usual first step of every command."""
    return validate(resolve(load_spec(find_spec_file(path)), overrides or []))
