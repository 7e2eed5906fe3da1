"""`netbuilder search SPEC`: the spec's `search:` space explored with Optuna, each trial an
ordinary run folder, every trial planned on the meta device first so that one breaking a
`requires:` budget is pruned before it trains.

The study lives in an Optuna RDB storage: by default a SQLite file in the search folder, so a
search that is killed and started again continues the same study; any RDB URL (PostgreSQL,
MySQL) lets processes on several machines, each started with the same command, share it. A
trial whose process dies stops sending heartbeats; the next process to look fails it and
queues it again with the same values, and that retry resumes the dead trial's run folder.

`--trials N` is the size of the study, not of one process: trials that finished (completed or
pruned) and trials still running ahead of this one all count, so N workers stop at N trials
between them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import NetbuilderError
from ..report.requirements import budget_errors, budget_excess, held_accuracy
from ..report.summary import Summary, summarize_spec
from ..spec import Spec, read_spec
from ..spec.overrides import assignment
from ..spec.search import Dimension
from .checkpoint import LAST
from .loop import Diverged
from .search_options import SearchOptions, option_errors
from .search_report import TrialRow, trial_line, write_search_report
from .search_study import claim_folder, default_folder, quietly_open

if TYPE_CHECKING:
    import optuna

Room = Literal["go", "full"]
BUDGET = "budget"  # the trial's constraint: how far past its budgets its network is (0: fits)


# ---------------------------------------------------------------- the space and its trials


def draw(trial: optuna.Trial, dimension: Dimension) -> Any:
    """The trial's value for one dimension, named by its key in the spec."""
    if dimension.kind == "choice":
        return trial.suggest_categorical(dimension.key, list(dimension.values))
    low, high = dimension.values
    if dimension.kind == "int":
        return trial.suggest_int(dimension.key, int(low), int(high))
    return trial.suggest_float(dimension.key, low, high, log=dimension.kind == "log")


def trial_spec(path: str, overrides: Sequence[str], values: dict[str, Any], space: Any) -> Spec:
    """The spec a trial trains: the file, the command's --set, then the drawn values."""
    drawn = [assignment(d.path, values[d.key]) for d in space]
    return read_spec(path, [*overrides, *drawn])


def corner_values(space: Sequence[Dimension]) -> dict[str, Any]:
    """Each dimension at its low end: one spec read up front finds a bad dotted path."""
    return {d.key: d.values[0] for d in space}


def room(trials: Sequence[optuna.trial.FrozenTrial], me: int, wanted: int) -> Room:
    """Whether trial `me` may train in a study of `wanted` trials: finished ones, queued
    retries and running ones numbered before it take their places first."""
    from optuna.trial import TrialState

    taken = sum(
        1
        for t in trials
        if t.number != me
        and not t.user_attrs.get("skipped")
        and (
            t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING)
            or (t.state == TrialState.RUNNING and t.number < me)
        )
    )
    return "go" if taken < wanted else "full"


class NoRoom(Exception):
    """The study has its trials: this one is marked skipped and the process stops asking."""


@dataclass
class TrialRun:
    """One trial from the drawn values to its score; `objective` is what Optuna calls."""

    spec_path: str
    overrides: Sequence[str]
    space: tuple[Dimension, ...]
    folder: Path
    options: SearchOptions
    data_dir: str | None
    report: Callable[[str], None]

    def objective(self, trial: optuna.Trial) -> float | tuple[float, float]:
        if room(trial.study.get_trials(deepcopy=False), trial.number, self.options.trials) != "go":
            trial.set_user_attr("skipped", True)
            trial.study.stop()
            raise NoRoom
        values = {d.key: draw(trial, d) for d in self.space}
        number = original_number(trial)
        try:
            spec = trial_spec(self.spec_path, self.overrides, values, self.space)
        except NetbuilderError as error:  # e.g. a width the stride pattern cannot take
            trial.set_constraint(BUDGET, 1.0)  # infeasible, as far as the sampler is concerned
            raise self.pruned(trial, f"invalid: {error}") from None
        summary = summarize_spec(spec)
        record_static(trial, summary)
        trial.set_constraint(BUDGET, budget_excess(spec, summary))
        broken = budget_errors(spec, summary)
        if broken:
            raise self.pruned(trial, f"budget: {broken[0].message}")
        run_dir = self.folder / "trials" / f"{number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        single = len(self.options.directions) == 1

        def on_epoch(row: dict[str, Any]) -> None:
            if not single:
                return  # Optuna prunes single-objective studies only
            accuracy = 100 * float(row["test_acc"])
            trial.report(accuracy, int(row["epoch"]))
            if trial.should_prune():
                raise self.pruned(trial, f"pruned at epoch {row['epoch']} ({accuracy:.2f}%)")

        from .run import run_training

        resume = (run_dir / LAST).is_file()
        try:
            result = run_training(
                spec,
                run_dir,
                resume=resume,
                overwrite=not resume,
                data_dir=self.data_dir,
                progress=False,
                on_epoch=on_epoch,
            )
        except Diverged as error:
            raise self.pruned(trial, f"diverged: {error.message}") from None
        except KeyboardInterrupt:
            queue_again(trial)  # stopped by hand: the next start resumes it
            raise
        score = held_accuracy(result.history, spec.requires.over_last_epochs)
        if score is None:  # fewer epochs than the span: the whole run is the span
            score = held_accuracy(result.history, len(result.history)) or 0.0
        trial.set_user_attr("epochs_run", result.epochs)
        trial.set_user_attr("final_acc", round(100 * result.final_test_acc, 2))
        if single:
            return score
        by_params = self.options.objective.endswith("params")
        return score, float(summary.total_params if by_params else summary.total_macs)

    def pruned(self, trial: optuna.Trial, reason: str) -> optuna.TrialPruned:
        import optuna

        trial.set_user_attr("reason", reason)
        return optuna.TrialPruned(reason)


def frozen(trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    return next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)


def original_number(trial: optuna.Trial) -> int:
    """The number of the trial a retry stands in for (its run folder), else its own."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the helper is marked experimental
        first = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen(trial))
    return trial.number if first is None else int(first)


def queue_again(trial: optuna.Trial) -> None:
    """Queue a trial interrupted by hand with the same values, as a dead one would be."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    RetryHeartbeatStaleTrialCallback(max_retry=3, inherit_intermediate_values=True)(
        trial.study, frozen(trial)
    )


def record_static(trial: optuna.Trial, summary: Summary) -> None:
    """What the plan decides, stored with the trial for the table and the plots."""
    trial.set_user_attr("params", summary.total_params)
    trial.set_user_attr("macs", summary.total_macs)
    trial.set_user_attr("receptive_field", summary.final_receptive_field)


@dataclass(frozen=True)
class SearchResult:
    folder: Path
    study: optuna.Study
    best: TrialRow | None  # the completed trial of highest score, written to best.yaml


def require_optuna() -> None:
    """Optuna is an optional extra: say how to get it rather than fail on an import."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise NetbuilderError(
            "netbuilder search needs Optuna: pip install -e '.[search]'"
        ) from None


def run_search(
    spec_path: str,
    overrides: Sequence[str],
    options: SearchOptions,
    out: str | None = None,
    data_dir: str | None = None,
    report: Callable[[str], None] = print,
    worker_command: Callable[[Path, int], list[str]] | None = None,
) -> SearchResult:
    """Run (or continue) the search of the spec at `spec_path`. With `options.workers` > 1,
    `worker_command(folder, i)` is the CLI argument list worker i is started with."""
    problems = option_errors(options)
    if problems:
        raise NetbuilderError(problems[0])
    require_optuna()
    base = read_spec(spec_path, list(overrides))
    if not base.search:
        raise NetbuilderError(
            f"{base.source}: the spec declares no search: section (e.g. search: "
            "{width: {int: [4, 16]}})"
        )
    trial_spec(spec_path, overrides, corner_values(base.search), base.search)  # paths checked
    folder = Path(out) if out else default_folder(base, options)
    claim_folder(folder, options.study or base.name)
    study = quietly_open(base, folder, options)
    if options.workers > 1:
        if worker_command is None:
            raise NetbuilderError("--workers needs the command line to start the workers with")
        run_workers(options, lambda index: worker_command(folder, index))
    else:
        run = TrialRun(spec_path, overrides, base.search, folder, options, data_dir, report)
        optimize(study, run, options)
    best = write_search_report(folder, study, spec_path, overrides, base.search)
    return SearchResult(folder, study, best)


def optimize(study: optuna.Study, run: TrialRun, options: SearchOptions) -> None:
    """Trials until the study is full (or the timeout); then, while others still run, wait to
    take a dead one that is queued again rather than leave it to a later start."""
    import optuna
    from optuna.trial import TrialState

    deadline = None if options.timeout is None else time.monotonic() + options.timeout

    def trials_until_full() -> None:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        study.optimize(
            run.objective,
            timeout=left,
            catch=(NoRoom,),
            callbacks=[lambda _, trial: announce(trial, run.report)],
        )

    trials_until_full()
    while deadline is None or time.monotonic() < deadline:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        states = {t.state for t in study.get_trials(deepcopy=False)}
        if TrialState.WAITING in states:
            trials_until_full()
        elif TrialState.RUNNING in states:
            time.sleep(options.heartbeat)
        else:
            return


def announce(trial: optuna.trial.FrozenTrial, report: Callable[[str], None]) -> None:
    """One line per finished trial (skipped ones say nothing)."""
    if trial.user_attrs.get("skipped"):
        return
    report(trial_line(trial))


def run_workers(options: SearchOptions, command: Callable[[int], list[str]]) -> None:
    """`--workers N`: N processes on this study, worker i started with `command(i)` (the same
    search with --workers 1 and its own sampler seed) and an equal share of the cores."""
    threads = max(1, (os.cpu_count() or 1) // options.workers)
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    processes = [
        subprocess.Popen([sys.executable, "-m", "netbuilder.cli", *command(index)], env=env)
        for index in range(options.workers)
    ]
    codes = [process.wait() for process in processes]
    if any(codes):
        raise NetbuilderError(f"search workers ended with exit codes {codes}")
