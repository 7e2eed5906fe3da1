"""`train SPEC --sweep params.width=0.25,0.5,1.0 [--sweep KEY=V1,V2 ...]`: one run per point of
the grid, one after another, then a table (sweep.md, sweep.csv) and a plot of final accuracy
against parameters and multiply-adds (sweep.png) in the sweep's folder.

Every point is read, planned and checked before any trains (a point that breaks a limit, two
points that are one model, a folder already holding a run: refused up front); a point that
diverges is recorded as such and the sweep goes on; `--resume` continues a killed sweep: its
finished points are read back, the interrupted one resumes, the rest start.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ..data.files import atomic_write_bytes
from ..errors import NetbuilderError, raise_if_any
from ..report.summary import summarize_spec
from ..spec import Spec, read_spec
from .checkpoint import LAST
from .folder import RUN_FILES
from .loop import Diverged
from .records import RUNS_DIR, new_figure, save_figure, timestamp
from .run import RunResult, run_training

MAX_POINTS = 64  # runs in one sweep


@dataclass(frozen=True)
class SweepPoint:
    label: str  # "params.width=0.5,train.seed=2", also the run folder's name
    overrides: list[str]
    params: int
    macs: int
    result: RunResult | None  # None: the run diverged (`failure` says how)
    failure: str = ""


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


def folder_name(point: list[str]) -> str:
    return ",".join(point).replace("/", "_")


def plan_points(spec_path: str, overrides: list[str], points: list[list[str]]) -> list[Spec]:
    """Every point read and planned (its limits checked) before any trains; two points that
    are the same spec, or share a folder, are refused rather than trained twice."""
    specs = [read_spec(spec_path, [*overrides, *point]) for point in points]
    errors = []
    seen: dict[str, int] = {}
    folders: dict[str, int] = {}
    for index, (point, spec) in enumerate(zip(points, specs, strict=True)):
        key = json.dumps(spec.document.data, sort_keys=True, default=str)
        for table, value, what in ((seen, key, "spec"), (folders, folder_name(point), "folder")):
            if value in table:
                first = table[value]
                errors.append(
                    NetbuilderError(
                        f"--sweep: points {first + 1} ({','.join(points[first])}) and {index + 1} "
                        f"({','.join(point)}) give the same {what}; list each value once"
                    )
                )
            table.setdefault(value, index)
    raise_if_any(errors[:1])
    return specs


def check_folders(folder: Path, points: list[list[str]], resume: bool, overwrite: bool) -> None:
    """Without --resume or --overwrite, no point may land in a folder that holds a run."""
    if resume or overwrite:
        return
    taken = [
        folder_name(point)
        for point in points
        if any((folder / folder_name(point) / name).exists() for name in RUN_FILES)
    ]
    if taken:
        raise NetbuilderError(
            f"{folder} already holds runs of this sweep ({taken[0]}, ...); "
            "continue it with --resume, replace it with --overwrite, or "
            "choose another --out"
        )


def run_sweep(
    spec_path: str,
    overrides: list[str],
    sweeps: list[str],
    out: str | None,
    run: Callable[..., RunResult] = run_training,
    resume: bool = False,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    points = grid(sweeps)
    specs = plan_points(spec_path, overrides, points)
    summaries = [summarize_spec(spec) for spec in specs]  # params and MACs; every plan checked
    if resume and not out:
        raise NetbuilderError("--resume continues a sweep in the folder it names")
    folder = Path(out) if out else RUNS_DIR / f"{specs[0].name}-sweep-{timestamp()}"
    check_folders(folder, points, resume, overwrite)
    done = []
    for point, spec, summary in zip(points, specs, summaries, strict=True):
        run_dir = folder / folder_name(point)
        again = resume and (run_dir / LAST).is_file()
        try:
            result: RunResult | None = run(
                spec,
                run_dir,
                resume=again,
                overwrite=overwrite or (resume and not again),
                **options,
            )
            failure = ""
        except Diverged as error:  # recorded; the other points are still worth training
            result, failure = None, error.message
        done.append(
            SweepPoint(
                ",".join(point), point, summary.total_params, summary.total_macs, result, failure
            )
        )
        write_report(folder, done)
    return folder


def write_report(folder: Path, points: list[SweepPoint]) -> None:
    headers = ("point", "params", "macs", "final_acc", "best_acc", "epochs_run")
    rows = [
        (
            p.label,
            p.params,
            p.macs,
            round(100 * p.result.final_test_acc, 2),
            round(100 * p.result.best_test_acc, 2),
            p.result.epochs,
        )
        if p.result is not None
        else (p.label, p.params, p.macs, "diverged", "diverged", "")
        for p in points
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([headers, *rows])
    atomic_write_bytes(folder / "sweep.csv", buffer.getvalue().encode())
    table = tabulate(
        [
            (label, f"{params:,}", f"{macs:,}", _percent(final), _percent(best), epochs)
            for label, params, macs, final, best, epochs in rows
        ],
        headers=headers,
        tablefmt="github",
    )
    failures = [f"- {p.label}: {p.failure}" for p in points if p.result is None]
    notes = "\n\n" + "\n".join(failures) if failures else ""
    atomic_write_bytes(folder / "sweep.md", f"# Sweep\n\n{table}{notes}\n".encode())
    plot(folder / "sweep.png", [p for p in points if p.result is not None])


def _percent(value: Any) -> str:
    return f"{value:.2f}%" if isinstance(value, float) else str(value)


def plot(path: Path, points: list[SweepPoint]) -> None:
    figure = new_figure(10, 4)
    for axes, key, label in zip(
        figure.subplots(1, 2),
        ("params", "macs"),
        ("parameters", "multiply-adds per image"),
        strict=True,
    ):
        xs = [getattr(p, key) for p in points]
        ys = [100 * p.result.final_test_acc for p in points if p.result is not None]
        axes.plot(xs, ys, marker="o", linestyle="none")
        for x, y, p in zip(xs, ys, points, strict=True):
            axes.annotate(p.label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axes.set_xscale("log")
        axes.set_xlabel(label)
        axes.set_ylabel("final test accuracy (%)")
        axes.grid(alpha=0.3)
    save_figure(figure, path)
