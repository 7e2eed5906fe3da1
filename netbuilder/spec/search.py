"""The `search:` section: the space `netbuilder search` explores, declared beside the params it
changes. Each key is a bare param name (`width` stands for `params.width`) or any dotted
`--set` path (`train.optimizer.lr`); each value says how it is drawn. No torch, no Optuna here:
a search space is part of the spec and is checked with it.

    search:
      width: {int: [4, 16]}
      dropout: {float: [0.0, 0.2]}
      train.optimizer.lr: {log: [0.01, 0.3]}
      train.schedule.name: {choice: [onecycle, cosine]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import NetbuilderError
from .document import SpecDocument

Kind = Literal["int", "float", "log", "choice"]
KINDS: tuple[Kind, ...] = ("int", "float", "log", "choice")
SECTION = "search"
MAX_DIMENSIONS = 32  # a wider space than this is not searched in a few dozen trials

_RANGE = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}


SEARCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "the search space of `netbuilder search`: a param (or a dotted --set path "
    "such as train.optimizer.lr) mapped to how it is drawn",
    "maxProperties": MAX_DIMENSIONS,
    "additionalProperties": {
        "type": "object",
        "description": "how the value is drawn: one of int, float, log or choice",
        "properties": {
            "int": {**_RANGE, "items": {"type": "integer"}, "description": "[low, high], whole"},
            "float": {**_RANGE, "description": "[low, high]"},
            "log": {
                **_RANGE,
                "items": {"type": "number", "exclusiveMinimum": 0},
                "description": "[low, high], drawn on a log scale",
            },
            "choice": {
                "type": "array",
                "minItems": 1,
                "maxItems": 64,
                "items": {"type": ["string", "number", "boolean", "null"]},
                "description": "one of these values (scalars: what Optuna can store)",
            },
        },
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 1,
    },
}


@dataclass(frozen=True)
class Dimension:
    """One axis of the space: the `--set` path it assigns and how its value is drawn."""

    key: str  # as written in the spec: `width`, `train.optimizer.lr`
    kind: Kind
    values: tuple[Any, ...]  # (low, high), or the choices

    @property
    def path(self) -> str:
        """The `--set` path the drawn value is assigned to."""
        return self.key if "." in self.key else f"params.{self.key}"


def search_space(data: Any) -> tuple[Dimension, ...]:
    """The dimensions of a schema-valid `search:` mapping (absent: none)."""
    if not isinstance(data, dict):
        return ()
    return tuple(
        Dimension(str(key), kind, tuple(drawn[kind]))
        for key, drawn in data.items()
        if isinstance(drawn, dict)
        for kind in KINDS
        if isinstance(drawn.get(kind), list)
    )


def search_errors(document: SpecDocument) -> list[NetbuilderError]:
    """Ranges whose low end is above the high end: the schema cannot say so."""
    data = document.data if isinstance(document.data, dict) else {}
    errors = []
    for dimension in search_space(data.get(SECTION)):
        if dimension.kind == "choice" or len(dimension.values) != 2:
            continue  # the schema says what is wrong with other shapes
        low, high = dimension.values
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
        if numbers and low > high:
            errors.append(
                NetbuilderError(
                    f"the range [{low}, {high}] runs backwards; write [low, high]",
                    document.locate((SECTION, dimension.key, dimension.kind)),
                    f"{SECTION}.{dimension.key}",
                )
            )
    return errors
