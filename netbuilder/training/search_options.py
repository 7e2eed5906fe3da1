"""How `netbuilder search` runs: the options, their defaults (each with its reason) and their
checks, made before Optuna, torch or a dataset is imported."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import excerpt

OBJECTIVES: dict[str, tuple[str, ...]] = {  # what is optimised: accuracy, then a cost
    "accuracy": ("maximize",),
    "accuracy,params": ("maximize", "minimize"),
    "accuracy,macs": ("maximize", "minimize"),
}
PRUNERS = ("median", "halving", "none")
MAX_TRIALS = 10_000


@dataclass(frozen=True)
class SearchOptions:
    """How a search runs; the defaults suit one machine and a MNIST-sized spec."""

    trials: int = 20  # TPE models the space after 10 random start-up trials: 10 more use it
    storage: str | None = None  # None: sqlite:///<folder>/study.db
    study: str | None = None  # None: the spec's name
    timeout: float | None = None  # seconds after which this process starts no new trial
    objective: str = "accuracy"  # or "accuracy,params" / "accuracy,macs": a Pareto front
    pruner: str | None = None  # None: median for one objective (Optuna prunes only those)
    seed: int | None = None  # the sampler's seed; the trials' own seed is the spec's
    heartbeat: int = 30  # seconds; a trial silent for twice this is taken as dead
    workers: int = 1  # processes started on this machine, each with cores / workers threads

    @property
    def directions(self) -> tuple[str, ...]:
        return OBJECTIVES[self.objective]

    @property
    def chosen_pruner(self) -> str:
        return self.pruner or ("median" if len(self.directions) == 1 else "none")


def option_errors(options: SearchOptions) -> list[str]:
    """Every refusal of the options, before Optuna or a dataset is touched."""
    problems = []
    if not 1 <= options.trials <= MAX_TRIALS:
        problems.append(f"--trials must be between 1 and {MAX_TRIALS}, got {options.trials}")
    if options.objective not in OBJECTIVES:
        problems.append(
            f"--objective must be one of {', '.join(OBJECTIVES)}, got {excerpt(options.objective)}"
        )
    elif options.pruner not in (None, *PRUNERS):
        problems.append(f"--pruner must be one of {', '.join(PRUNERS)}, got {options.pruner}")
    elif len(options.directions) > 1 and options.chosen_pruner != "none":
        problems.append("Optuna prunes single-objective studies only: use --pruner none")
    if options.timeout is not None and options.timeout <= 0:
        problems.append(f"--timeout must be positive, got {options.timeout}")
    if options.heartbeat < 1:
        problems.append(f"--heartbeat must be at least 1 second, got {options.heartbeat}")
    if not 1 <= options.workers <= (os.cpu_count() or 1):
        problems.append(f"--workers must be between 1 and {os.cpu_count() or 1} (the cores here)")
    return problems
