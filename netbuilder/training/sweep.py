"""`train SPEC --sweep params.width=0.25,0.5,1.0 [--sweep KEY=V1,V2 ...]`: one run per point of
the grid, one after another, then a table (sweep.md, sweep.csv) and a plot of final accuracy
against parameters and multiply-adds (sweep.png) in the sweep's folder."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ..data.files import atomic_write_bytes
from ..errors import NetbuilderError
from ..report.summary import summarize_spec
from ..spec import read_spec
from .records import RUNS_DIR, new_figure, save_figure, timestamp
from .run import RunResult, run_training

MAX_POINTS = 64  # runs in one sweep


@dataclass(frozen=True)
class SweepPoint:
    label: str  # "params.width=0.5,train.seed=2", also the run folder's name
    overrides: list[str]
    params: int
    macs: int
    result: RunResult


def grid(sweeps: list[str]) -> list[list[str]]:
    """`KEY=V1,V2` arguments to every combination of assignments."""
    axes = []
    for sweep in sweeps:
        key, sep, values = sweep.partition("=")
        choices = [value.strip() for value in values.split(",") if value.strip()]
        if not sep or not key.strip() or not choices:
            raise NetbuilderError(
                f"--sweep expects KEY=V1,V2,... (e.g. params.width=0.5,1.0), got '{sweep}'"
            )
        axes.append([f"{key.strip()}={value}" for value in choices])
    points = [list(point) for point in itertools.product(*axes)]
    if len(points) > MAX_POINTS:
        raise NetbuilderError(f"the sweep has {len(points)} points; the limit is {MAX_POINTS}")
    return points


def run_sweep(
    spec_path: str,
    overrides: list[str],
    sweeps: list[str],
    out: str | None,
    run: Callable[..., RunResult] = run_training,
    **options: Any,
) -> Path:
    points = grid(sweeps)
    specs = [read_spec(spec_path, [*overrides, *point]) for point in points]  # check all first
    folder = Path(out) if out else RUNS_DIR / f"{specs[0].name}-sweep-{timestamp()}"
    done = []
    for point, spec in zip(points, specs, strict=True):
        label = ",".join(point)
        summary = summarize_spec(spec)
        result = run(spec, folder / label.replace("/", "_"), **options)
        done.append(SweepPoint(label, point, summary.total_params, summary.total_macs, result))
        write_report(folder, done)
    return folder


def write_report(folder: Path, points: list[SweepPoint]) -> None:
    rows = [
        (
            p.label,
            p.params,
            p.macs,
            round(100 * p.result.final_test_acc, 2),
            round(100 * p.result.best_test_acc, 2),
            p.result.epochs,
        )
        for p in points
    ]
    headers = ("point", "params", "macs", "final_acc", "best_acc", "epochs_run")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([headers, *rows])
    atomic_write_bytes(folder / "sweep.csv", buffer.getvalue().encode())
    table = tabulate(
        [
            (label, f"{params:,}", f"{macs:,}", f"{final:.2f}%", f"{best:.2f}%", ep)
            for label, params, macs, final, best, ep in rows
        ],
        headers=headers,
        tablefmt="github",
    )
    atomic_write_bytes(folder / "sweep.md", f"# Sweep\n\n{table}\n".encode())
    plot(folder / "sweep.png", points)


def plot(path: Path, points: list[SweepPoint]) -> None:
    figure = new_figure(10, 4)
    for axes, key, label in zip(
        figure.subplots(1, 2),
        ("params", "macs"),
        ("parameters", "multiply-adds per image"),
        strict=True,
    ):
        xs = [getattr(p, key) for p in points]
        ys = [100 * p.result.final_test_acc for p in points]
        axes.plot(xs, ys, marker="o", linestyle="none")
        for x, y, p in zip(xs, ys, points, strict=True):
            axes.annotate(p.label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axes.set_xscale("log")
        axes.set_xlabel(label)
        axes.set_ylabel("final test accuracy (%)")
        axes.grid(alpha=0.3)
    save_figure(figure, path)
