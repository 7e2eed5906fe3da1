"""Training a spec: `config` (the `train:` section, declared once; no torch), `device`
(device choice and autocast), `evaluation` (loss from the head, accuracy, confusion), `loop`
(optimizer, schedule, step, epoch) and `run` (run folder, checkpoints, resume, the run itself).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("run_training", "RunResult"):
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module 'netbuilder.training' has no attribute {name!r}")
