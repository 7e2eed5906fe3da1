"""A training run: its folder (locked while in use), checkpoints, exact resume, records, and
`run_training`, which strings the steps together."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..compiler import compile_spec
from ..errors import NetbuilderError, raise_if_any
from ..report.formatting import format_table
from ..report.requirements import accuracy_miss, budget_errors
from ..report.summary import summarize_spec
from ..spec.config import RESUME_FREE, TrainConfig, config_errors
from ..spec.requires import Requirements
from ..spec.types import Spec
from . import speed
from .checkpoint import (
    BEST,
    FORMAT_VERSION,
    LAST,
    capture_rng_state,
    check_same_spec,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    spec_fingerprint,
)
from .distributed import Cluster, barrier, from_main, gather, join, leave
from .evaluation import EvalStats
from .folder import FolderLock, default_run_dir, open_run_folder
from .inputs import prepare_data
from .loop import Session, build_session, evaluate_test_split, run_epoch, warm_up_eval
from .pretrained import Loaded, describe_init, freeze
from .records import (
    TensorBoard,
    plot_confusion,
    write_confusion_csv,
    write_history,
    write_spec_yaml,
    write_text,
)


@dataclass
class RunState:
    """How far a run got; everything here goes into each checkpoint."""

    epoch: int = 0  # last completed epoch
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv rows
    best_test_acc: float = -1.0
    best_epoch: int = 0

    def record(self, row: dict[str, Any]) -> bool:
        """Add an epoch's row; True when its best weights (the average's or, where they score
        higher, the trained ones) are the best so far."""
        self.history.append(row)
        self.epoch = row["epoch"]
        if epoch_score(row) > self.best_test_acc:
            self.best_test_acc, self.best_epoch = epoch_score(row), row["epoch"]
            return True
        return False


def epoch_score(row: dict[str, Any]) -> float:
    """The test accuracy of the better weights of an epoch: best.pt keeps those."""
    return float(max(row["test_acc"], row.get("raw_test_acc", row["test_acc"])))


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    epochs: int
    history: list[dict[str, Any]]
    best_test_acc: float
    best_epoch: int
    final: EvalStats
    class_names: list[str]
    device: str
    config: TrainConfig  # as trained: normalisation resolved
    compile_seconds: float | None  # first compiled eval batch + train step; None without
    initialised: Loaded | None = None  # what train.init_from loaded, and how
    requirement_miss: str | None = None  # the `requires:` the finished run misses, one line

    @property
    def final_test_acc(self) -> float:
        return self.final.accuracy


# ---------------------------------------------------------------- checkpoints and resume


def checkpoint_payload(
    session: Session,
    state: RunState,
    spec_data: dict[str, Any],
    config: TrainConfig,
    classes: list[str],
) -> dict[str, Any]:
    """Plain data and tensors only, so `torch.load(weights_only=True)` reads it back."""
    last = state.history[-1] if state.history else {}
    ema = session.ema
    return {
        "format_version": FORMAT_VERSION,
        "model": (ema.module if ema is not None else session.model).state_dict(),  # tested
        "training_model": session.model.state_dict() if ema is not None else None,
        "ema_state": ema.state_dict() if ema is not None else None,  # with its update count
        "optimizer": session.optimizer.state_dict(),
        "scheduler": session.scheduler.state_dict(),
        "scaler": session.scaler.state_dict() if session.scaler else None,
        "epoch": state.epoch,
        "train_acc": last.get("train_acc"),
        "test_acc": last.get("test_acc"),
        "best_test_acc": state.best_test_acc,
        "best_epoch": state.best_epoch,
        "history": copy.deepcopy(state.history),
        "rng": {
            "ranks": gather(capture_rng_state(), session.cluster),
            "loader": {"seed": config.seed, "next_epoch": state.epoch + 1},
        },
        "spec": spec_data,
        "spec_name": spec_data["name"],
        "fingerprint": spec_fingerprint(spec_data),
        "train_config": config.to_dict(),
        "class_names": list(classes),
    }


def check_same_training(payload: dict[str, Any], config: TrainConfig, path: Path) -> None:
    """An exact resume needs the settings the run started with (schedules span all epochs)."""
    stored, current = _flatten(payload["train_config"]), _flatten(config.to_dict())
    for key, value in current.items():
        if key.split(".")[0] not in RESUME_FREE and stored.get(key) != value:
            raise NetbuilderError(
                f"cannot resume {path}: train.{key} is {value!r} now but was "
                f"{stored.get(key)!r} when the run started; resume with the same settings"
            )


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def resume_state(
    run_dir: Path, session: Session, spec_data: dict[str, Any], config: TrainConfig
) -> RunState:
    """Load last.pt into the session and the global RNG; the run continues after its epoch."""
    path = run_dir / LAST
    payload = load_checkpoint(path, map_location="cpu")
    check_same_spec(payload, spec_data, path)
    check_same_training(payload, config, path)
    try:
        if session.ema is not None:
            session.model.load_state_dict(payload["training_model"])
            session.ema.load_state_dict(payload["ema_state"])
        else:
            session.model.load_state_dict(payload["model"])
        session.optimizer.load_state_dict(payload["optimizer"])
        session.scheduler.load_state_dict(payload["scheduler"])
        if session.scaler is not None and payload.get("scaler"):
            session.scaler.load_state_dict(payload["scaler"])
        ranks = payload["rng"]["ranks"]
        if len(ranks) != session.cluster.world:
            raise NetbuilderError(
                f"{path} was trained by {len(ranks)} process(es); resume it "
                f"with as many (this is {session.cluster.world})"
            )
        restore_rng_state(ranks[session.cluster.rank])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise NetbuilderError(
            f"cannot resume from {path}: its state does not fit this run "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None
    return RunState(
        payload["epoch"], list(payload["history"]), payload["best_test_acc"], payload["best_epoch"]
    )


# ---------------------------------------------------------------- records


def best_payload(payload: dict[str, Any], session: Session, row: dict[str, Any]) -> dict[str, Any]:
    """best.pt: the epoch's checkpoint with the weights that tested better as its model, so it
    is never worse than the trained weights of that epoch (an average still warming up can
    be)."""
    if session.ema is None or row["raw_test_acc"] <= row["test_acc"]:
        return payload | {"weights": "average" if session.ema is not None else "trained"}
    return payload | {"model": session.model.state_dict(), "weights": "trained"}


def save_epoch(
    run_dir: Path,
    payload: dict[str, Any],
    best: dict[str, Any] | None,
    history: list[dict[str, Any]],
) -> None:
    """best.pt (when the epoch improved on it), last.pt, then the records from the history."""
    if best is not None:
        save_checkpoint(run_dir / BEST, best)
    save_checkpoint(run_dir / LAST, payload)
    write_history(run_dir, history)


def record_requirements(run_dir: Path, spec: Spec, miss: str | None) -> None:
    """requirements.json: what the spec requires and whether the run met it."""
    if spec.requires == Requirements():
        return
    report = {"requires": spec.requires.to_dict(), "met": miss is None, "miss": miss}
    write_text(run_dir / "requirements.json", json.dumps(report, indent=2) + "\n")


def finish_run(
    run_dir: Path,
    spec: Spec,
    state: RunState,
    final: EvalStats,
    classes: list[str],
    details: dict[str, str],
) -> None:
    """Files written once at the end: confusion matrix (CSV and plot) and the summary."""
    write_confusion_csv(run_dir / "confusion.csv", final.confusion, classes)
    plot_confusion(run_dir / "confusion.png", final.confusion, classes)
    lines = [
        format_table(summarize_spec(spec)),
        "",
        *(f"{key}: {value}" for key, value in details.items()),
    ]
    write_text(run_dir / "summary.txt", "\n".join(lines) + "\n")


def run_details(
    state: RunState, final: EvalStats, config: TrainConfig, session: Session
) -> dict[str, str]:
    details = {
        "dataset": config.dataset,
        "device": str(session.device)
        + (f" x {session.cluster.world} processes" if session.cluster.distributed else ""),
        "precision": str(session.amp_dtype or "float32").replace("torch.", ""),
        "epochs trained": str(state.epoch),
        "best test accuracy": f"{state.best_test_acc:.2%} (epoch {state.best_epoch})",
        "final test accuracy": f"{final.accuracy:.2%}",
    }
    if session.initialised is not None:
        details["initialised from"] = describe_init(session.initialised)
    if session.warmup_seconds is not None:
        details["compile warm-up"] = f"{session.warmup_seconds:.1f} s (excluded from metrics.csv)"
    return details


# ---------------------------------------------------------------- the run


def run_training(
    spec: Spec,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    data_dir: str | Path | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train `spec` as its `train:` section says, writing checkpoints and records into the run
    folder (default: runs/<name>-<time>), which stays locked against a second run meanwhile.

    `resume` continues the run in `out_dir` from its last.pt; `overwrite` replaces a finished
    or abandoned run there. `progress` shows a tqdm bar per epoch (one plain line per epoch
    where stderr is not a terminal); `on_epoch` receives each epoch's row once it is saved.
    """
    config = spec.train
    raise_if_any(config_errors(config, spec.input_shape[0]))  # `validate` ran them on the file
    # every refusal the plan can make, before a folder or a dataset is touched
    freeze(compile_spec(spec, device="meta")[0], config.freeze)  # names checked on a meta model
    raise_if_any(budget_errors(spec))  # `requires:` budgets: a network that breaks one never trains
    cluster, device = join(config.device)
    try:
        if config.batch_size % cluster.world:
            raise NetbuilderError(
                f"train.batch_size {config.batch_size} (the global batch) must "
                f"divide evenly among the {cluster.world} processes"
            )
        run_dir = Path(from_main(str(out_dir or default_run_dir(spec.name)), cluster))
        lock = open_on_main(run_dir, resume, overwrite, cluster)
        try:
            return _train(
                spec,
                config,
                run_dir,
                device,
                cluster,
                resume,
                data_dir,
                progress and cluster.is_main,
                on_epoch,
            )
        finally:
            if lock is not None:
                lock.release()
    finally:
        leave(cluster)


def open_on_main(
    run_dir: Path, resume: bool, overwrite: bool, cluster: Cluster
) -> FolderLock | None:
    """Rank 0 opens (and locks) the run folder; the others learn whether it could."""
    lock, problem = None, None
    if cluster.is_main:
        try:
            lock = open_run_folder(run_dir, resume, overwrite)
        except NetbuilderError as error:
            problem = error
    message = from_main(None if problem is None else str(problem), cluster)
    if problem is not None:
        raise problem
    if message is not None:
        raise NetbuilderError(f"rank 0 could not open the run folder: {message}")
    return lock


def _train(
    spec: Spec,
    config: TrainConfig,
    run_dir: Path,
    device: torch.device,
    cluster: Cluster,
    resume: bool,
    data_dir: str | Path | None,
    progress: bool,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> RunResult:
    main = cluster.is_main
    config, loaders = prepare_data(spec, config, data_dir, device, progress, cluster)
    config, timed = speed.settle(spec, config, device, run_dir / LAST if resume else None, cluster)
    if main and timed is not None:
        speed.record(run_dir, timed, progress)
    session = build_session(
        spec, config, device, len(loaders.train), cluster, initialise=not resume
    )
    spec_data = copy.deepcopy(spec.document.data) | {"train": config.to_dict()}
    state = resume_state(run_dir, session, spec_data, config) if resume else RunState()
    if main:
        write_history(run_dir, state.history)
        write_spec_yaml(run_dir / "spec.yaml", spec_data)
    if session.compiled:
        session.warmup_seconds = warm_up_eval(session, loaders.test)
    board = TensorBoard(run_dir, state.epoch + 1) if main else None
    final = None
    try:
        for epoch in range(state.epoch + 1, config.epochs + 1):
            row, final = run_epoch(session, loaders, epoch, config, spec.num_classes, progress)
            improved = state.record(row)
            payload = checkpoint_payload(session, state, spec_data, config, loaders.classes)
            if board is not None:  # the main rank
                best = best_payload(payload, session, row) if improved else None
                save_epoch(run_dir, payload, best, state.history)
                board.log(row)
                if on_epoch is not None:
                    on_epoch(row)
            barrier(cluster)  # the checkpoint is complete before any rank goes on
    finally:
        if board is not None:
            board.close()
    if final is None:  # resumed a finished run: nothing trained, test the weights once more
        final = evaluate_test_split(session, loaders.test, spec.num_classes)
    found = accuracy_miss(spec, state.history)
    miss = None if found is None else str(found)
    if main:
        record_requirements(run_dir, spec, miss)
    if main:
        finish_run(
            run_dir, spec, state, final, loaders.classes, run_details(state, final, config, session)
        )
    return RunResult(
        run_dir,
        state.epoch,
        state.history,
        state.best_test_acc,
        state.best_epoch,
        final,
        loaders.classes,
        str(device),
        config,
        session.warmup_seconds,
        session.initialised,
        miss,
    )
