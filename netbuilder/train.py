"""Training a spec on its dataset: config, data, model session, epochs, checkpoints, records.

`run_training` is a short list of steps; each step is a small function that can be tested on
its own. Runs are reproducible on CPU: weights come from `torch.manual_seed(seed)`, shuffling
and augmentation from (seed, epoch, batch) inside `BatchLoader`, and dropout from the global
RNG, whose state every checkpoint stores, so a resumed run replays the uninterrupted one.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import lr_scheduler

from .checkpoint import (
    BEST,
    FORMAT_VERSION,
    LAST,
    capture_rng_state,
    check_same_spec,
    load_checkpoint,
    remove_stale_temp_files,
    restore_rng_state,
    save_checkpoint,
    spec_fingerprint,
)
from .compiler import build_model, compile_spec
from .data import BatchLoader, BatchTransform, dataset_info, load_dataset, resolve_data_dir
from .errors import NetbuilderError
from .records import (
    EpochProgress,
    default_run_dir,
    plot_confusion,
    plot_curves,
    write_confusion_csv,
    write_metrics,
    write_spec_yaml,
    write_text,
)
from .schema import TRAIN_SCHEMA, schema_defaults
from .spec import Spec

DEVICES = ("auto", "cpu", "cuda", "mps")
SYNC_EVERY = 25  # batches between GPU syncs for the NaN check and the progress bar
RESUME_FREE = ("compile", "eval_batch_size", "amp", "channels_last")  # may change on resume
PASSIVE_TAIL = (nn.Dropout, nn.Identity, nn.Flatten)  # layers that do not change what a head is


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class OptimizerConfig:
    name: str
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float


@dataclass(frozen=True)
class ScheduleConfig:
    name: str
    step_size: int
    gamma: float
    pct_start: float
    warmup_epochs: float


@dataclass(frozen=True)
class NormalizeConfig:
    mean: list[float]
    std: list[float]


@dataclass(frozen=True)
class AugmentConfig:
    rotation: float
    translate: float
    scale: list[float]


@dataclass(frozen=True)
class TransformsConfig:
    normalize: NormalizeConfig
    augment: AugmentConfig


@dataclass(frozen=True)
class TrainConfig:
    """The spec's `train:` section with every default filled in (field docs: TRAIN_SCHEMA)."""

    dataset: str
    epochs: int
    batch_size: int
    eval_batch_size: int
    seed: int
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    label_smoothing: float
    transforms: TransformsConfig
    compile: bool
    channels_last: bool
    amp: bool

    @classmethod
    def from_spec(cls, spec: Spec) -> TrainConfig:
        return _from_dict(cls, deep_merge(schema_defaults(TRAIN_SCHEMA), spec.train))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override`'s values on top; nested mappings merge instead of replacing."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    hints = get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):
        kind, value = hints[item.name], data[item.name]
        values[item.name] = _from_dict(kind, value) if dataclasses.is_dataclass(kind) else value
    return cls(**values)


def check_config(config: TrainConfig, spec: Spec) -> None:
    """What the schema cannot check alone: settings that depend on each other or on the spec."""
    channels = spec.input_shape[0]
    for key in ("mean", "std"):
        values = getattr(config.transforms.normalize, key)
        if len(values) not in (1, channels):
            raise NetbuilderError(
                f"train.transforms.normalize.{key} has {len(values)} values; expected 1 or "
                f"{channels} (the spec's input channels), got {values}")
    schedule = config.schedule
    if schedule.name == "onecycle" and schedule.warmup_epochs > 0:
        raise NetbuilderError("train.schedule: onecycle warms up by itself; set pct_start "
                              f"instead of warmup_epochs (got {schedule.warmup_epochs})")
    if schedule.warmup_epochs >= config.epochs:
        raise NetbuilderError(f"train.schedule.warmup_epochs ({schedule.warmup_epochs}) must be "
                              f"less than train.epochs ({config.epochs})")
    optimizer = config.optimizer
    if optimizer.name == "sgd" and optimizer.nesterov and optimizer.momentum == 0:
        raise NetbuilderError("train.optimizer.nesterov needs momentum > 0, got momentum 0")


def resolved_spec_data(spec: Spec, config: TrainConfig) -> dict[str, Any]:
    """The spec as trained: its own data with the complete train config."""
    data = copy.deepcopy(spec.document.data)
    data["train"] = config.to_dict()
    return data


# ---------------------------------------------------------------- device and data


def resolve_device(name: str) -> torch.device:
    """auto picks CUDA, then Apple's MPS, then the CPU; asking for a missing one is an error."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name not in DEVICES:
        raise NetbuilderError(f"unknown device '{name}'; expected one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise NetbuilderError("--device cuda: no CUDA device is available; use --device cpu "
                              "or auto")
    if name == "mps" and not has_mps:
        raise NetbuilderError("--device mps: MPS is not available; use --device cpu or auto")
    return torch.device(name)


def make_transform(spec: Spec, config: TrainConfig) -> BatchTransform:
    """uint8 dataset batch -> what the spec's input layer expects: its size and channels."""
    normal, augment = config.transforms.normalize, config.transforms.augment
    low, high = augment.scale
    return BatchTransform(size=spec.input_shape[1:], channels=spec.input_shape[0],
                         mean=tuple(normal.mean), std=tuple(normal.std),
                         rotation=augment.rotation, translate=augment.translate,
                         scale=(low, high))


def class_names(dataset: str) -> list[str]:
    """Short class labels for tables and plots ('0'..'9' for digits)."""
    info = dataset_info(dataset)
    if info.folder is None:
        return [str(index) for index in range(info.num_classes)]
    from torchvision import datasets  # deferred: slow import, needed only for real datasets

    names = getattr(getattr(datasets, info.folder), "classes", None)
    if not names or len(names) != info.num_classes:
        return [str(index) for index in range(info.num_classes)]
    return [name.split(" - ")[0] for name in names]


def check_dataset_fits(spec: Spec, dataset: str) -> None:
    """The spec must predict the dataset's classes and read its channels."""
    info = dataset_info(dataset)
    if spec.num_classes != info.num_classes:
        raise NetbuilderError(f"spec '{spec.name}' has num_classes {spec.num_classes} but dataset "
                              f"'{dataset}' has {info.num_classes} classes")
    channels = spec.input_shape[0]
    if info.channels not in (1, channels):
        raise NetbuilderError(f"spec '{spec.name}' takes {channels} input channels but dataset "
                              f"'{dataset}' has {info.channels}")


def make_loader(spec: Spec, config: TrainConfig, train: bool, data_dir: str | Path | None,
                device: torch.device) -> BatchLoader:
    """One split of the dataset, in memory on `device`, transformed for the spec."""
    check_dataset_fits(spec, config.dataset)
    dataset = load_dataset(config.dataset, resolve_data_dir(str(data_dir) if data_dir else None),
                           train=train)
    batch_size = config.batch_size if train else config.eval_batch_size
    return BatchLoader(dataset, batch_size, transform=make_transform(spec, config), train=train,
                       seed=config.seed, device=device)


# ---------------------------------------------------------------- model, loss, optimizer


class SmoothedNLLLoss(nn.Module):
    """NLL on log-probabilities with label smoothing, equal to CrossEntropyLoss(label_smoothing)
    on the logits: (1 - eps) * nll + eps * mean over classes of -log p."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, log_probs: Tensor, target: Tensor) -> Tensor:
        nll = F.nll_loss(log_probs, target)
        if self.label_smoothing == 0:
            return nll
        uniform = -log_probs.mean(dim=1).mean()
        return (1 - self.label_smoothing) * nll + self.label_smoothing * uniform


def output_layer(model: nn.Module) -> nn.Module:
    """The last layer that decides what the model outputs (trailing dropout etc. skipped)."""
    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    while len(leaves) > 1 and isinstance(leaves[-1], PASSIVE_TAIL):
        leaves.pop()
    return leaves[-1] if leaves else model


def select_loss(model: nn.Module, label_smoothing: float = 0.0) -> nn.Module:
    """NLL for a log_softmax head, cross-entropy for raw logits; a softmax head is refused."""
    head = output_layer(model)
    if isinstance(head, nn.Softmax):
        raise NetbuilderError(
            "the model ends in softmax, which cannot be trained stably (the log of its "
            "probabilities underflows); end it with log_softmax, or with the raw logits")
    if isinstance(head, nn.LogSoftmax):
        return SmoothedNLLLoss(label_smoothing)
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


def to_probabilities(model: nn.Module, output: Tensor) -> Tensor:
    """Class probabilities from whatever the head outputs."""
    head = output_layer(model)
    if isinstance(head, nn.Softmax):
        return output
    if isinstance(head, nn.LogSoftmax):
        return output.exp()
    return output.softmax(dim=1)


def make_optimizer(parameters: Iterator[nn.Parameter],
                   config: OptimizerConfig) -> torch.optim.Optimizer:
    if config.name == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov, weight_decay=config.weight_decay)
    optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.name]
    return optimizer_class(parameters, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                   steps_per_epoch: int) -> lr_scheduler.LRScheduler:
    """A schedule stepped once per batch, with the optional linear warm-up in front of it."""
    schedule = config.schedule
    total = steps_per_epoch * config.epochs
    warmup = round(schedule.warmup_epochs * steps_per_epoch)
    if warmup == 0:
        return _main_schedule(optimizer, config, steps_per_epoch, total)
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup, total_iters=warmup)
    if schedule.name == "none":
        return ramp
    main = _main_schedule(optimizer, config, steps_per_epoch, total - warmup)
    return lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def _main_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int,
                   steps: int) -> lr_scheduler.LRScheduler:
    schedule = config.schedule
    if schedule.name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=schedule.step_size * steps_per_epoch,
                                   gamma=schedule.gamma)
    if schedule.name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    if schedule.name == "onecycle":
        sgd_without_momentum = config.optimizer.name == "sgd" and config.optimizer.momentum == 0
        return lr_scheduler.OneCycleLR(optimizer, max_lr=config.optimizer.lr, total_steps=steps,
                                       pct_start=schedule.pct_start,
                                       cycle_momentum=not sgd_without_momentum)
    return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def autocast_dtype(amp: bool, device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU has it (no loss scaling needed), else fp16; None: full precision."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass
class Session:
    """Everything that changes while training: model, optimizer, schedule, loss scaler."""

    model: nn.Module  # the module whose state is saved
    forward: nn.Module  # the same model, or its torch.compile wrapper
    loss_fn: nn.Module
    eval_loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    warmup_seconds: float | None = None  # compile warm-up so far; None without compile
    train_warmed_up: bool = False  # the training graph has been compiled

    @property
    def compiled(self) -> bool:
        return self.forward is not self.model


def build_session(spec: Spec, config: TrainConfig, device: torch.device,
                  steps_per_epoch: int) -> Session:
    torch.manual_seed(config.seed)
    model = build_model(spec).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model.parameters(), config.optimizer)
    amp_dtype = autocast_dtype(config.amp, device)
    return Session(
        model=model,
        forward=torch.compile(model) if config.compile else model,
        loss_fn=select_loss(model, config.label_smoothing),
        eval_loss_fn=select_loss(model, 0.0),
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, config, steps_per_epoch),
        scaler=torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None,
        device=device,
        amp_dtype=amp_dtype,
        channels_last=config.channels_last,
    )


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _prepare(x: Tensor, channels_last: bool) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- one epoch


def train_step(session: Session, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """One optimizer and schedule step; returns the batch's mean loss and correct count."""
    with autocast(session.device, session.amp_dtype):
        output = session.forward(_prepare(x, session.channels_last))
        loss = session.loss_fn(output, y)
    session.optimizer.zero_grad(set_to_none=True)
    if session.scaler is not None:
        session.scaler.scale(loss).backward()
        session.scaler.step(session.optimizer)
        session.scaler.update()
    else:
        loss.backward()
        session.optimizer.step()
    session.scheduler.step()
    return loss.detach(), (output.detach().argmax(dim=1) == y).sum()


class RunningLoss:
    """Per-batch losses kept on the device and checked every few batches, so a GPU is not
    stalled by a sync per batch; a NaN or inf is still reported with its exact batch."""

    def __init__(self, epoch: int, batches: int):
        self.epoch = epoch
        self.batches = batches
        self.pending: list[tuple[Tensor, Tensor, int]] = []
        self.checked = 0  # batches already checked
        self.loss_sum = 0.0
        self.correct = 0
        self.seen = 0

    def add(self, loss: Tensor, correct: Tensor, count: int) -> None:
        self.pending.append((loss, correct, count))

    def check(self) -> None:
        """Fold pending batches into the sums; raise on the first non-finite loss."""
        if not self.pending:
            return
        losses = torch.stack([loss.float() for loss, _, _ in self.pending])
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0, 0])
            raise NetbuilderError(
                f"training diverged: the loss is {losses[bad].item()} at epoch {self.epoch}, "
                f"batch {self.checked + bad + 1} of {self.batches}; lower the learning rate "
                "(earlier checkpoints were kept)")
        counts = torch.tensor([count for _, _, count in self.pending], device=losses.device)
        self.loss_sum += float((losses * counts).sum())
        self.correct += int(torch.stack([correct for _, correct, _ in self.pending]).sum())
        self.seen += int(counts.sum())
        self.checked += len(self.pending)
        self.pending.clear()

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(1, self.seen)

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.seen)


@dataclass(frozen=True)
class TrainStats:
    loss: float
    accuracy: float
    seconds: float  # compile warm-up excluded
    images: int
    lr: float  # learning rate of the epoch's last batch
    warmup: float  # compile warm-up spent in this epoch (first compiled step), else 0


def train_epoch(session: Session, loader: BatchLoader, epoch: int,
                progress: EpochProgress) -> TrainStats:
    session.model.train()
    running = RunningLoss(epoch, len(loader))
    lr, warmup, start = 0.0, 0.0, time.perf_counter()
    for index, (x, y) in enumerate(loader.batches(epoch)):
        lr = session.optimizer.param_groups[0]["lr"]
        if session.compiled and not session.train_warmed_up:
            warmup = _timed_step(session, x, y, running)
            session.warmup_seconds = (session.warmup_seconds or 0.0) + warmup
            session.train_warmed_up = True
        else:
            running.add(*train_step(session, x, y), len(y))
        if (index + 1) % SYNC_EVERY == 0 or index + 1 == len(loader):
            running.check()
            elapsed = time.perf_counter() - start - warmup
            progress.update(running.checked, running.mean_loss, running.accuracy,
                            running.seen / max(elapsed, 1e-9))
    _synchronize(session.device)
    seconds = time.perf_counter() - start - warmup
    return TrainStats(running.mean_loss, running.accuracy, seconds, running.seen, lr, warmup)


def _timed_step(session: Session, x: Tensor, y: Tensor, running: RunningLoss) -> float:
    """The first step of a compiled model, timed on its own: it includes the compilation."""
    start = time.perf_counter()
    running.add(*train_step(session, x, y), len(y))
    _synchronize(session.device)
    return time.perf_counter() - start


@torch.no_grad()
def warm_up_eval(session: Session, loader: BatchLoader) -> float:
    """Compile the evaluation graph before any epoch is timed; eval mode draws no random
    numbers and updates no BatchNorm statistics, so the run itself is unchanged."""
    start = time.perf_counter()
    x, _ = next(loader.batches(0))
    session.model.eval()
    with autocast(session.device, session.amp_dtype):
        session.forward(_prepare(x, session.channels_last))
    _synchronize(session.device)
    return time.perf_counter() - start


@dataclass(frozen=True)
class EvalStats:
    loss: float
    accuracy: float
    confusion: Tensor  # (classes, classes) counts; rows true, columns predicted

    @property
    def per_class_accuracy(self) -> list[float]:
        totals = self.confusion.sum(dim=1).clamp(min=1)
        return (self.confusion.diag().double() / totals).tolist()


@torch.no_grad()
def evaluate_model(model: nn.Module, loader: BatchLoader, loss_fn: nn.Module, num_classes: int,
                   amp_dtype: torch.dtype | None = None,
                   channels_last: bool = False) -> EvalStats:
    """Mean loss, accuracy and confusion matrix over a whole split, synced once at the end."""
    model.eval()
    device = loader.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
    for x, y in loader.batches(0):
        with autocast(device, amp_dtype):
            output = model(_prepare(x, channels_last))
            loss = loss_fn(output, y)
        loss_sum += loss.double() * len(y)
        confusion += torch.bincount(y * num_classes + output.argmax(dim=1),
                                    minlength=num_classes * num_classes)
    confusion = confusion.view(num_classes, num_classes).cpu()
    seen = max(1, int(confusion.sum()))
    return EvalStats(float(loss_sum) / seen, int(confusion.diag().sum()) / seen, confusion)


# ---------------------------------------------------------------- run state and checkpoints


@dataclass
class RunState:
    """How far a run got; everything here goes into each checkpoint."""

    epoch: int = 0  # last completed epoch
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv rows
    best_test_acc: float = -1.0
    best_epoch: int = 0

    def record(self, row: dict[str, Any]) -> bool:
        """Add an epoch's row; True when its test accuracy is the best so far."""
        self.history.append(row)
        self.epoch = row["epoch"]
        if row["test_acc"] > self.best_test_acc:
            self.best_test_acc, self.best_epoch = row["test_acc"], row["epoch"]
            return True
        return False


def checkpoint_payload(session: Session, state: RunState, spec_data: dict[str, Any],
                       config: TrainConfig) -> dict[str, Any]:
    """Plain data and tensors only, so `torch.load(weights_only=True)` reads it back."""
    last = state.history[-1] if state.history else {}
    return {
        "format_version": FORMAT_VERSION,
        "model": session.model.state_dict(),
        "optimizer": session.optimizer.state_dict(),
        "scheduler": session.scheduler.state_dict(),
        "scaler": session.scaler.state_dict() if session.scaler else None,
        "epoch": state.epoch,
        "train_acc": last.get("train_acc"),
        "test_acc": last.get("test_acc"),
        "best_test_acc": state.best_test_acc,
        "best_epoch": state.best_epoch,
        "history": copy.deepcopy(state.history),
        "rng": {**capture_rng_state(),
                "loader": {"seed": config.seed, "next_epoch": state.epoch + 1}},
        "spec": spec_data,
        "spec_name": spec_data["name"],
        "fingerprint": spec_fingerprint(spec_data),
        "train_config": config.to_dict(),
    }


def check_same_training(payload: dict[str, Any], config: TrainConfig, path: Path) -> None:
    """An exact resume needs the settings the run started with (schedules span all epochs)."""
    stored, current = _flatten(payload["train_config"]), _flatten(config.to_dict())
    for key, value in current.items():
        if key.split(".")[0] not in RESUME_FREE and stored.get(key) != value:
            raise NetbuilderError(
                f"cannot resume {path}: train.{key} is {value!r} now but was "
                f"{stored.get(key)!r} when the run started; resume with the same settings")


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def resume_state(run_dir: Path, session: Session, spec_data: dict[str, Any],
                 config: TrainConfig) -> RunState:
    """Load last.pt into the session and the global RNG; the run continues after its epoch."""
    path = run_dir / LAST
    if not path.is_file():
        raise NetbuilderError(f"nothing to resume in {run_dir}: {LAST} not found")
    payload = load_checkpoint(path, map_location="cpu")
    check_same_spec(payload, spec_data, path)
    check_same_training(payload, config, path)
    session.model.load_state_dict(payload["model"])
    session.optimizer.load_state_dict(payload["optimizer"])
    session.scheduler.load_state_dict(payload["scheduler"])
    if session.scaler is not None and payload.get("scaler"):
        session.scaler.load_state_dict(payload["scaler"])
    restore_rng_state(payload["rng"])
    return RunState(payload["epoch"], list(payload["history"]), payload["best_test_acc"],
                    payload["best_epoch"])


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    if resume:
        remove_stale_temp_files(run_dir)
        return
    if (run_dir / LAST).exists():
        raise NetbuilderError(f"{run_dir} already holds a run ({LAST}); continue it with "
                              "--resume, or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)


def save_epoch(run_dir: Path, session: Session, state: RunState, improved: bool,
               spec_data: dict[str, Any], config: TrainConfig) -> None:
    """best.pt (when improved), last.pt, then the records derived from the history."""
    payload = checkpoint_payload(session, state, spec_data, config)
    if improved:
        save_checkpoint(run_dir / BEST, payload)
    save_checkpoint(run_dir / LAST, payload)
    write_metrics(run_dir / "metrics.csv", state.history)
    plot_curves(run_dir / "curves.png", state.history)


# ---------------------------------------------------------------- the run


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
    compile_seconds: float | None  # first compiled eval batch + train step; None without

    @property
    def final_test_acc(self) -> float:
        return self.final.accuracy


@dataclass(frozen=True)
class Loaders:
    train: BatchLoader
    test: BatchLoader


def run_epoch(session: Session, loaders: Loaders, epoch: int, config: TrainConfig,
              num_classes: int, progress: bool) -> tuple[dict[str, Any], EvalStats]:
    """Train and test one epoch; returns its metrics row and the test statistics."""
    start = time.perf_counter()
    with EpochProgress(epoch, config.epochs, len(loaders.train), progress) as bar:
        train = train_epoch(session, loaders.train, epoch, bar)
        test = evaluate_model(session.forward, loaders.test, session.eval_loss_fn, num_classes,
                              session.amp_dtype, session.channels_last)
        seconds = time.perf_counter() - start - train.warmup
        row = {"epoch": epoch, "train_loss": train.loss, "train_acc": train.accuracy,
               "test_loss": test.loss, "test_acc": test.accuracy, "lr": train.lr,
               "seconds": seconds, "images_per_s": train.images / max(train.seconds, 1e-9)}
        bar.finish(row)
    return row, test


def finish_run(run_dir: Path, spec: Spec, state: RunState, final: EvalStats,
               names: list[str], details: dict[str, str]) -> None:
    """Files written once at the end: confusion matrix (CSV and plot) and the summary."""
    write_confusion_csv(run_dir / "confusion.csv", final.confusion, names)
    plot_confusion(run_dir / "confusion.png", final.confusion, names)
    lines = [model_table(spec), "", *(f"{key}: {value}" for key, value in details.items())]
    write_text(run_dir / "summary.txt", "\n".join(lines) + "\n")


def model_table(spec: Spec) -> str:
    """The layer table of `netbuilder build --summary`, or the module tree without it."""
    try:
        from .formatting import format_table
        from .summary import summarize
    except ImportError:
        return str(build_model(spec))
    model, plan = compile_spec(spec)
    return format_table(summarize(model, plan, spec))


def run_details(state: RunState, final: EvalStats, config: TrainConfig, session: Session) -> dict:
    details = {
        "dataset": config.dataset,
        "device": str(session.device),
        "epochs": str(state.epoch),
        "best test accuracy": f"{state.best_test_acc:.2%} (epoch {state.best_epoch})",
        "final test accuracy": f"{final.accuracy:.2%}",
    }
    if session.warmup_seconds is not None:
        details["compile warm-up"] = f"{session.warmup_seconds:.1f} s (excluded from metrics.csv)"
    return details


def run_training(
    spec: Spec,
    out_dir: str | Path | None = None,
    device: str = "auto",
    resume: bool = False,
    data_dir: str | Path | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train `spec` on its dataset, writing checkpoints and records into the run folder.

    `resume` continues the run in `out_dir` from its last.pt. `progress` shows a tqdm bar per
    epoch (one plain line per epoch where stderr is not a terminal); `on_epoch` receives each
    epoch's metrics row after it was saved.
    """
    config = TrainConfig.from_spec(spec)
    check_config(config, spec)
    run_dir = Path(out_dir) if out_dir is not None else default_run_dir(spec.name)
    torch_device = resolve_device(device)
    loaders = Loaders(make_loader(spec, config, True, data_dir, torch_device),
                      make_loader(spec, config, False, data_dir, torch_device))
    session = build_session(spec, config, torch_device, len(loaders.train))
    spec_data = resolved_spec_data(spec, config)
    prepare_run_dir(run_dir, resume)
    state = resume_state(run_dir, session, spec_data, config) if resume else RunState()
    write_spec_yaml(run_dir / "spec.yaml", spec_data)
    if session.compiled:
        session.warmup_seconds = warm_up_eval(session, loaders.test)
    final = None
    for epoch in range(state.epoch + 1, config.epochs + 1):
        row, final = run_epoch(session, loaders, epoch, config, spec.num_classes, progress)
        improved = state.record(row)
        save_epoch(run_dir, session, state, improved, spec_data, config)
        if on_epoch is not None:
            on_epoch(row)
    if final is None:  # resumed a finished run: nothing trained, test the weights once more
        final = evaluate_model(session.forward, loaders.test, session.eval_loss_fn,
                               spec.num_classes, session.amp_dtype, session.channels_last)
    names = class_names(config.dataset)
    finish_run(run_dir, spec, state, final, names, run_details(state, final, config, session))
    return RunResult(run_dir, state.epoch, state.history, state.best_test_acc, state.best_epoch,
                     final, names, str(torch_device), session.warmup_seconds)
