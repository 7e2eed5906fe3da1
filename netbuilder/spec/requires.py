"""The `requires:` section: what a network of this spec must be (budgets checked on the plan
before anything trains) and what its training must reach (checked when it ends). Declared
once, like the train section: the schema, the typed `Spec.requires` and the checks read it.
No torch here.

    requires:
      max_params: 8000             # the seeds' budget
      min_receptive_field: 28      # the receptive field covers the digit
      max_peak_memory: 262144      # bytes of float32 activations at the inference peak
      min_accuracy: 99.4           # final-epoch test accuracy, %
      over_last_epochs: 3          # ... at each of the last 3 epochs
      max_epochs: 15
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any

from .config import from_data
from .registry import Arg

STATIC = ("max_params", "max_macs", "min_receptive_field", "max_peak_memory", "max_epochs")


@dataclass(frozen=True)
class Requirements:
    """what the network and its training must show; the budgets are checked before training"""

    max_params: Annotated[int | None, Arg("at most this many parameters", minimum=1)] = None
    max_macs: Annotated[
        float | None,
        Arg("at most this many multiply-adds per image (e.g. 2.5e9)", exclusive_minimum=0),
    ] = None
    min_receptive_field: Annotated[
        int | None, Arg("at least this receptive field, in input pixels", minimum=1)
    ] = None
    max_peak_memory: Annotated[
        float | None,
        Arg(
            "at most this many bytes of float32 activations at the inference peak (batch 1)",
            exclusive_minimum=0,
        ),
    ] = None
    min_accuracy: Annotated[
        float | None,
        Arg("final-epoch test accuracy (%) the run must reach", minimum=0, maximum=100),
    ] = None
    over_last_epochs: Annotated[
        int, Arg("min_accuracy must hold at each of the last this many epochs", minimum=1)
    ] = 1  # the final epoch alone
    max_epochs: Annotated[int | None, Arg("train.epochs at most", minimum=1)] = None

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> Requirements:
        requirements: Requirements = from_data(cls, data or {})
        return requirements

    def static(self) -> bool:
        """Whether any budget is set that the plan decides."""
        return any(getattr(self, name) is not None for name in STATIC)

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}
