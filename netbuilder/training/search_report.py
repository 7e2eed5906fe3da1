"""What a search leaves in its folder: trials.md and trials.csv (one row per trial: its drawn
values, what the plan says, how it ended), search.png (accuracy against parameters and
multiply-adds with the Pareto front, and the optimisation history) and best.yaml (the best
trial as a plain spec file that `train` and `build` take as it is).

The plots are drawn here rather than with `optuna.visualization.matplotlib`: that module is
experimental, draws one figure per call on pyplot's global state, and knows nothing of the
parameters and multiply-adds each trial stored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from tabulate import tabulate

from ..compiler import compile_spec
from ..compiler.plain import plain_spec
from ..data.files import atomic_write_bytes
from ..spec.search import Dimension
from .records import new_figure, save_figure

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # complete, pruned, failed, running, waiting
    values: dict[str, Any]
    params: int | None
    macs: int | None
    receptive_field: int | None
    score: float | None  # accuracy held over the last epochs (%), completed trials only
    epochs: int | None
    reason: str

    @property
    def complete(self) -> bool:
        return self.state == "complete" and self.score is not None


def trial_rows(trials: Sequence[optuna.trial.FrozenTrial]) -> list[TrialRow]:
    """The study's trials, skipped ones (drawn after the study was full) left out."""
    rows = []
    for trial in trials:
        attrs = trial.user_attrs
        if attrs.get("skipped"):
            continue
        state = trial.state.name.lower().replace("fail", "failed")
        rows.append(
            TrialRow(
                trial.number,
                state,
                dict(trial.params),
                attrs.get("params"),
                attrs.get("macs"),
                attrs.get("receptive_field"),
                trial.values[0] if trial.values else None,
                attrs.get("epochs_run"),
                str(attrs.get("reason", "")),
            )
        )
    return rows


def trial_line(trial: optuna.trial.FrozenTrial) -> str:
    """One line for a finished trial: its number, values and how it ended."""
    rows = trial_rows([trial])
    if not rows:
        return ""
    row = rows[0]
    values = ", ".join(f"{key}={format_value(value)}" for key, value in row.values.items())
    size = f"{row.params:,} params" if row.params is not None else "not planned"
    outcome = f"{row.score:.2f}%" if row.complete and row.score is not None else row.reason
    return f"trial {row.number} {row.state}: {values}; {size}; {outcome or row.state}"


def format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both cost (lower) and accuracy (higher),
    by ascending cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = float("-inf")
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front


def best_row(rows: Sequence[TrialRow]) -> TrialRow | None:
    """The completed trial of highest score; the smaller network where two tie."""
    done = [row for row in rows if row.complete]
    return max(done, key=lambda r: (r.score or 0.0, -(r.params or 0)), default=None)


def write_search_report(
    folder: Path,
    study: optuna.Study,
    spec_path: str,
    overrides: Sequence[str],
    space: Sequence[Dimension],
) -> TrialRow | None:
    """Write the table, the plots and best.yaml; returns the best trial's row."""
    from .search import trial_spec  # the one place a trial's spec is made

    rows = trial_rows(study.get_trials(deepcopy=False))
    keys = [d.key for d in space]
    write_tables(folder, rows, keys, study.study_name)
    plot_search(folder / "search.png", rows)
    best = best_row(rows)
    if best is not None:
        spec = trial_spec(spec_path, overrides, best.values, space)
        _, plan = compile_spec(spec, device="meta")
        header = (
            f"# trial {best.number} of study {study.study_name}: "
            f"{best.score:.2f}% held over the last {spec.requires.over_last_epochs} epoch(s)\n"
        )
        text = yaml.safe_dump(plain_spec(spec, plan), sort_keys=False, default_flow_style=None)
        atomic_write_bytes(folder / "best.yaml", (header + text).encode())
    return best


def write_tables(folder: Path, rows: Sequence[TrialRow], keys: Sequence[str], name: str) -> None:
    headers = ["trial", "state", *keys, "params", "macs", "receptive_field", "score", "epochs_run"]
    headers.append("reason")
    table = [
        [
            row.number,
            row.state,
            *(row.values.get(key, "") for key in keys),
            row.params,
            row.macs,
            row.receptive_field,
            None if row.score is None else round(row.score, 2),
            row.epochs,
            row.reason,
        ]
        for row in rows
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([headers, *table])
    atomic_write_bytes(folder / "trials.csv", buffer.getvalue().encode())
    shown = [[_cell(value) for value in line] for line in table]
    done = sum(row.complete for row in rows)
    pruned = sum(row.state == "pruned" for row in rows)
    best = best_row(rows)
    lines = [
        f"# Search: study {name}",
        "",
        f"{len(rows)} trials: {done} complete, {pruned} pruned. Score: the test accuracy "
        "held over the last epochs (`requires.over_last_epochs`), %.",
        "",
        tabulate(shown, headers=headers, tablefmt="github"),
    ]
    if best is not None:
        lines += ["", f"Best: trial {best.number} ({best.score:.2f}%), written to best.yaml."]
    atomic_write_bytes(folder / "trials.md", ("\n".join(lines) + "\n").encode())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return format_value(value)


def plot_search(path: Path, rows: Sequence[TrialRow]) -> None:
    """Accuracy against parameters and against multiply-adds (front joined), and the history."""
    done = [row for row in rows if row.complete and row.params is not None]
    figure = new_figure(15, 4)
    size_axes, macs_axes, history_axes = figure.subplots(1, 3)
    for axes, cost, label in (
        (size_axes, "params", "parameters"),
        (macs_axes, "macs", "multiply-adds per image"),
    ):
        points = [(float(getattr(row, cost)), float(row.score or 0.0)) for row in done]
        axes.plot([p[0] for p in points], [p[1] for p in points], "o", alpha=0.6)
        front = [points[i] for i in pareto_front(points)]
        axes.plot([p[0] for p in front], [p[1] for p in front], "-", label="Pareto front")
        axes.set_xlabel(label)
        axes.set_ylabel("score (%)")
        axes.grid(alpha=0.3)
        if front:
            axes.legend(fontsize=8)
    numbers = [row.number for row in done]
    scores = [row.score or 0.0 for row in done]
    running_best = [max(scores[: i + 1]) for i in range(len(scores))]
    history_axes.plot(numbers, scores, "o", alpha=0.6, label="trial")
    history_axes.step(numbers, running_best, where="post", label="best so far")
    history_axes.set_xlabel("trial")
    history_axes.set_ylabel("score (%)")
    history_axes.grid(alpha=0.3)
    if done:
        history_axes.legend(fontsize=8)
    save_figure(figure, path)
