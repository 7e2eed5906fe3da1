"""A spec's `requires:` checked: the budgets against its summary (parameters, multiply-adds,
receptive field, inference peak memory, epochs), before anything trains; the accuracy against
a finished run's history. Each miss is one located line naming both figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import NetbuilderError
from ..spec.types import Spec
from .summary import Summary, summarize_spec

PLANNED = ("max_params", "max_macs", "min_receptive_field", "max_peak_memory")  # need a summary


def budget_errors(spec: Spec, summary: Summary | None = None) -> list[NetbuilderError]:
    """The budgets of `requires:` the network breaks (none set: nothing is summarised)."""
    wanted = spec.requires
    errors = []
    if wanted.max_epochs is not None and spec.train.epochs > wanted.max_epochs:
        errors.append(
            _miss(
                spec,
                "max_epochs",
                f"train.epochs is {spec.train.epochs}, more than the {wanted.max_epochs} allowed",
            )
        )
    if all(getattr(wanted, name) is None for name in PLANNED):
        return errors
    summary = summary or summarize_spec(spec)
    checks: list[tuple[str, Any, float | None, bool, str]] = [
        ("max_params", wanted.max_params, summary.total_params, True, "parameters"),
        ("max_macs", wanted.max_macs, summary.total_macs, True, "multiply-adds"),
        (
            "min_receptive_field",
            wanted.min_receptive_field,
            summary.final_receptive_field,
            False,
            "pixels of receptive field",
        ),
        (
            "max_peak_memory",
            wanted.max_peak_memory,
            summary.peak.bytes if summary.peak else None,
            True,
            "bytes at the inference peak (float32, batch 1)",
        ),
    ]
    for key, limit, actual, at_most, unit in checks:
        if limit is None or actual is None:
            continue
        if (actual > limit) if at_most else (actual < limit):
            relation = "more than" if at_most else "less than"
            errors.append(
                _miss(
                    spec,
                    key,
                    f"the network has {actual:,.0f} {unit}, {relation} the {limit:,.0f} required",
                )
            )
    return errors


def budget_excess(spec: Spec, summary: Summary) -> float:
    """How far the network is past its worst-broken budget, relative to it (0: all met); the
    constraint Optuna's sampler learns from, so that it stops drawing networks that are too big."""
    wanted = spec.requires
    peak = summary.peak.bytes if summary.peak else None
    limits = (
        (wanted.max_params, summary.total_params),
        (wanted.max_macs, summary.total_macs),
        (wanted.max_peak_memory, peak),
    )
    excess = [(actual - limit) / limit for limit, actual in limits if limit and actual is not None]
    field = summary.final_receptive_field
    if wanted.min_receptive_field and field is not None:
        excess.append((wanted.min_receptive_field - field) / wanted.min_receptive_field)
    if wanted.max_epochs is not None:
        excess.append((spec.train.epochs - wanted.max_epochs) / wanted.max_epochs)
    return max([0.0, *excess])


def held_accuracy(history: Sequence[dict[str, Any]], epochs: int) -> float | None:
    """The test accuracy (%) a run held over its last `epochs` epochs: their minimum (None:
    fewer epochs ran). What `min_accuracy` checks and what `search` maximises."""
    if len(history) < epochs:
        return None
    return min(100 * float(row["test_acc"]) for row in history[-epochs:])


def accuracy_miss(spec: Spec, history: Sequence[dict[str, Any]]) -> NetbuilderError | None:
    """`min_accuracy` over the last `over_last_epochs` epochs of a finished run, or None."""
    wanted = spec.requires
    if wanted.min_accuracy is None or not history:
        return None
    held = held_accuracy(history, wanted.over_last_epochs)
    if held is None or held < wanted.min_accuracy:
        reached = held if held is not None else held_accuracy(history, len(history))
        span = (
            "the final epoch"
            if wanted.over_last_epochs == 1
            else f"the last {wanted.over_last_epochs} epochs"
        )
        return _miss(
            spec,
            "min_accuracy",
            f"{span} reached {reached:.2f}%, less than the {wanted.min_accuracy:.2f}% required",
        )
    return None


def _miss(spec: Spec, key: str, message: str) -> NetbuilderError:
    return NetbuilderError(message, spec.document.locate(("requires", key)), f"requires.{key}")
