"""`search:` in a spec and `netbuilder search`: the space checked with the spec, trials on a
real Optuna SQLite study (synthetic data), budgets pruning before training, the study shared
by worker processes, and a killed worker's trial retried into its own run folder."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from conftest import tiny_spec, write_spec
from netbuilder import NetbuilderError, read_spec
from netbuilder.report.requirements import budget_excess
from netbuilder.report.summary import summarize_spec
from netbuilder.spec.search import Dimension
from netbuilder.training.search import room
from netbuilder.training.search_options import SearchOptions, option_errors
from netbuilder.training.search_report import pareto_front

ROOT = Path(__file__).resolve().parents[1]


def searchable(search: dict[str, Any], requires: dict[str, Any] | None = None, **train: Any):
    """The tiny spec with its first conv's width as a param, and a search space."""
    data = tiny_spec(name="tiny_search", train={"epochs": 2, **train})
    data["params"] = {"width": 4}
    data["layers"][0]["conv_bn"]["out_channels"] = "${width}"
    data["search"] = search
    if requires:
        data["requires"] = requires
    return data


def trials_csv(folder: Path) -> list[dict[str, str]]:
    with (folder / "trials.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def load(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny_search", storage=f"sqlite:///{folder / 'study.db'}")


# ---------------------------------------------------------------- the space, as part of the spec


def test_search_space_is_read_with_bare_names_as_params(tmp_path: Path) -> None:
    search = {"width": {"int": [2, 8]}, "train.optimizer.lr": {"log": [0.01, 0.3]}}
    spec = read_spec(write_spec(tmp_path / "s.yaml", searchable(search)))
    assert spec.search == (
        Dimension("width", "int", (2, 8)),
        Dimension("train.optimizer.lr", "log", (0.01, 0.3)),
    )
    assert [d.path for d in spec.search] == ["params.width", "train.optimizer.lr"]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        (
            {"widht": {"int": [2, 8]}},
            "search: the search names 'widht', which is not a param; did you mean 'width'?",
        ),
        ({"width": {"int": [8, 2]}}, "search.width: the range [8, 2] runs backwards"),
        (
            {"width": {"int": [2, 8], "choice": [2, 4]}},
            "search.width: expected how the value is drawn: one of int, float, log or choice",
        ),
        ({"width": {"log": [0, 1]}}, "search.width.log[0]"),
        ({"width": {"choice": [[1, 2]]}}, "search.width.choice[0]"),
        ({"width": {"uniform": [0, 1]}}, "search.width"),
    ],
)
def test_search_mistakes_are_located(
    tmp_path: Path, run_cli: Any, search: dict[str, Any], expected: str
) -> None:
    path = write_spec(tmp_path / "s.yaml", searchable(search))
    result = run_cli("validate", str(path))
    assert result.code == 2
    assert expected in result.err
    assert f"{path}:" in result.err  # the file and the line


def test_options_are_checked_before_anything_runs() -> None:
    assert option_errors(SearchOptions()) == []
    assert "--trials" in option_errors(SearchOptions(trials=0))[0]
    assert (
        "single-objective"
        in option_errors(SearchOptions(objective="accuracy,params", pruner="median"))[0]
    )
    assert option_errors(SearchOptions(objective="accuracy,params")) == []  # no pruner then
    assert "--objective" in option_errors(SearchOptions(objective="loss"))[0]


def test_a_bad_dotted_path_is_refused_before_any_trial(tmp_path: Path, run_cli: Any) -> None:
    path = write_spec(tmp_path / "s.yaml", searchable({"train.optimiser.lr": {"log": [0.01, 1]}}))
    result = run_cli("search", str(path), "--out", str(tmp_path / "out"), "--trials", "2")
    assert result.code == 2
    assert "optimiser" in result.err
    assert not (tmp_path / "out" / "study.db").exists()


def test_a_spec_without_a_space_is_refused(tmp_path: Path, run_cli: Any) -> None:
    path = write_spec(tmp_path / "s.yaml", tiny_spec())
    result = run_cli("search", str(path), "--out", str(tmp_path / "out"))
    assert result.code == 2
    assert "no search: section" in result.err


# ---------------------------------------------------------------- pure parts


def frozen(number: int, state: optuna.trial.TrialState, **attrs: Any) -> Any:
    trial = optuna.trial.create_trial(
        state=state,
        value=1.0 if state == optuna.trial.TrialState.COMPLETE else None,
        user_attrs=attrs,
    )
    trial.number = number
    return trial


def test_room_counts_finished_queued_and_earlier_running_trials() -> None:
    state = optuna.trial.TrialState
    trials = [
        frozen(0, state.COMPLETE),
        frozen(1, state.PRUNED),
        frozen(2, state.FAIL),  # lost: its retry (waiting) takes its place
        frozen(3, state.RUNNING),
        frozen(4, state.FAIL, skipped=True),
        frozen(5, state.WAITING),
        frozen(7, state.RUNNING),  # started after trial 6: 6 goes first
    ]
    assert room(trials, 6, wanted=5) == "go"  # 0, 1, 3, 5 take four places
    assert room(trials, 6, wanted=4) == "full"
    assert room(trials, 8, wanted=5) == "full"  # 7 is ahead of 8 as well


def test_pareto_front_keeps_the_points_nothing_beats() -> None:
    points = [(100.0, 90.0), (50.0, 95.0), (200.0, 99.0), (60.0, 94.0), (300.0, 98.0)]
    assert pareto_front(points) == [1, 2]


def test_budget_excess_is_zero_when_met_and_relative_when_broken(tmp_path: Path) -> None:
    data = searchable({"width": {"int": [2, 8]}}, {"max_params": 100})
    spec = read_spec(write_spec(tmp_path / "s.yaml", data))
    summary = summarize_spec(spec)
    assert budget_excess(spec, summary) == pytest.approx((summary.total_params - 100) / 100)
    roomy = read_spec(write_spec(tmp_path / "r.yaml", {**data, "requires": {"max_params": 10**6}}))
    assert budget_excess(roomy, summarize_spec(roomy)) == 0.0


# ---------------------------------------------------------------- real studies


@pytest.mark.slow
def test_search_trains_trials_prunes_budget_breakers_and_continues(
    tmp_path: Path, run_cli: Any
) -> None:
    """Five trials on synthetic data: budget breakers never get a run folder, the rest are
    ordinary runs; a second start with --trials 7 adds two, not seven."""
    data = searchable({"width": {"int": [2, 12]}}, {"max_params": 700})
    path = write_spec(tmp_path / "s.yaml", data)
    out = tmp_path / "search"
    first = run_cli("search", str(path), "--trials", "5", "--out", str(out), "--seed", "0")
    assert first.code == 0, first.err
    rows = trials_csv(out)
    assert len(rows) == 5
    assert first.out.count("\ntrial ") + first.out.startswith("trial ") == 5
    for row in rows:
        folder = out / "trials" / f"{int(row['trial']):04d}"
        if int(row["params"]) > 700:
            assert row["state"] == "pruned" and row["reason"].startswith("budget:")
            assert not folder.exists()  # never trained
        elif row["state"] == "complete":
            assert (folder / "metrics.csv").is_file() and (folder / "best.pt").is_file()
            assert float(row["score"]) > 0
    assert {"trials.md", "search.png", "best.yaml", "search.json"} <= {
        p.name for p in out.iterdir()
    }
    best = yaml.safe_load((out / "best.yaml").read_text(encoding="utf-8"))
    assert "search" not in best and best["requires"]["max_params"] == 700
    chosen = max((r for r in rows if r["state"] == "complete"), key=lambda r: float(r["score"]))
    assert best["layers"][0]["conv_bn"]["out_channels"] == int(chosen["width"])
    assert read_spec(out / "best.yaml").name == "tiny_search"  # a plain spec, as it is

    again = run_cli("search", str(path), "--trials", "7", "--out", str(out), "--seed", "0")
    assert again.code == 0, again.err
    assert len(trials_csv(out)) == 7
    drawn = [(t.params["width"]) for t in load(out).trials if t.params]
    assert len(drawn) >= 7


@pytest.mark.slow
def test_another_study_in_the_same_folder_is_refused(tmp_path: Path, run_cli: Any) -> None:
    path = write_spec(tmp_path / "s.yaml", searchable({"width": {"int": [2, 4]}}))
    out = tmp_path / "search"
    assert run_cli("search", str(path), "--trials", "1", "--out", str(out)).code == 0
    other = run_cli("search", str(path), "--trials", "1", "--out", str(out), "--study", "x")
    assert other.code == 2
    assert "holds the search of study 'tiny_search'" in other.err


def start_search(path: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "netbuilder.cli", "search", str(path), "--out", str(out), *extra],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_workers_share_one_study_without_extra_trials(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "s.yaml", searchable({"width": {"int": [2, 8]}}))
    out = tmp_path / "search"
    process = start_search(path, out, "--trials", "5", "--workers", "2", "--seed", "3")
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr.decode()
    trials = load(out).trials
    counted = [t for t in trials if not t.user_attrs.get("skipped")]
    assert len(counted) == 5
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in trials)
    assert len(trials_csv(out)) == 5
    assert stdout.decode().count("best trial") == 1  # the parent reports, the workers do not


@pytest.mark.slow
def test_a_killed_trial_is_retried_into_its_own_run_folder(tmp_path: Path) -> None:
    """SIGKILL in the middle of trial 0: the next start fails it (no heartbeat), queues it with
    the same values and resumes its run folder from last.pt; the study still has 2 trials."""
    data = searchable({"width": {"int": [2, 8]}}, epochs=40)
    path = write_spec(tmp_path / "s.yaml", data)
    out = tmp_path / "search"
    options = ("--trials", "2", "--heartbeat", "1", "--pruner", "none", "--seed", "0")
    process = start_search(path, out, *options)
    metrics = out / "trials" / "0000" / "metrics.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait for a few saved epochs
        if metrics.is_file() and len(metrics.read_text(encoding="utf-8").splitlines()) > 3:
            break
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    epochs_before = len(metrics.read_text(encoding="utf-8").splitlines()) - 1
    assert 2 <= epochs_before < 40
    time.sleep(2.5)  # past the grace period: the dead trial's heartbeat is stale
    again = start_search(path, out, *options)
    _, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr.decode()
    trials = load(out).trials
    state = optuna.trial.TrialState
    assert trials[0].state == state.FAIL  # the dead one
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == 0)
    assert retry.state == state.COMPLETE and retry.params == trials[0].params
    rows = [line.split(",")[0] for line in metrics.read_text(encoding="utf-8").splitlines()[1:]]
    assert rows == [str(epoch) for epoch in range(1, 41)]  # resumed, each epoch once
    done = [t for t in trials if t.state in (state.COMPLETE, state.PRUNED)]
    assert len(done) == 2


def test_search_without_optuna_says_how_to_get_it(
    tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    path = write_spec(tmp_path / "s.yaml", searchable({"width": {"int": [2, 4]}}))
    result = run_cli("search", str(path), "--out", str(tmp_path / "out"))
    assert result.code == 2
    assert "pip install -e '.[search]'" in result.err


def test_search_errors_are_netbuilder_errors(tmp_path: Path) -> None:
    from netbuilder.training.search import run_search

    path = write_spec(tmp_path / "s.yaml", searchable({"width": {"int": [2, 4]}}))
    with pytest.raises(NetbuilderError, match="--trials"):
        run_search(str(path), [], SearchOptions(trials=0), out=str(tmp_path / "o"))
