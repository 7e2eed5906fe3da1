"""The training loop: optimizer and schedule from the config, the model session, one step,
one epoch (train, then test). Runs are reproducible on CPU: weights come from
`torch.manual_seed(seed)`, shuffling and augmentation from (seed, epoch, batch) inside
`BatchLoader`, and dropout from the global RNG, whose state every checkpoint stores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.optim import lr_scheduler
from torch.optim.swa_utils import AveragedModel

from ..compiler import compile_spec
from ..compiler.checks import batchnorm_errors
from ..compiler.heads import output_kind
from ..data.loader import BatchLoader
from ..errors import NetbuilderError, raise_if_any
from ..spec.config import OptimizerConfig, TrainConfig
from ..spec.types import Spec
from .averaging import weight_average
from .device import autocast, autocast_dtype, prepare, synchronize
from .distributed import Cluster, all_sum, wrap
from .evaluation import EvalStats, evaluate_model, make_loss
from .inputs import Loaders
from .pretrained import Loaded, freeze, initialise_from
from .records import EpochProgress


class Diverged(NetbuilderError):
    """The loss became NaN or infinite: a user error (the learning rate, mostly) that a sweep
    records for its point before going on to the next."""


SYNC_EVERY = 25  # batches between GPU syncs for the NaN check and the progress bar
MIN_ONECYCLE_STEPS = 3  # one-cycle needs a step up and a step down


def make_optimizer(
    parameters: Iterator[nn.Parameter], config: OptimizerConfig
) -> torch.optim.Optimizer:
    if config.name == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    if config.name == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> lr_scheduler.LRScheduler:
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


def _main_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int, steps: int
) -> lr_scheduler.LRScheduler:
    schedule = config.schedule
    if schedule.name == "step":
        return lr_scheduler.StepLR(
            optimizer, step_size=schedule.step_size * steps_per_epoch, gamma=schedule.gamma
        )
    if schedule.name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    if schedule.name == "onecycle":
        if steps < MIN_ONECYCLE_STEPS:
            raise NetbuilderError(
                f"train.schedule onecycle needs at least {MIN_ONECYCLE_STEPS} optimizer steps; "
                f"this run has {steps} ({config.epochs} epochs of {steps_per_epoch} batches); "
                "train longer, use a smaller batch, or another schedule"
            )
        # in a very short run, keep at least 1.5 steps on each side of the peak (torch divides
        # by the length of each phase)
        pct_start = min(max(schedule.pct_start, 1.5 / steps), 1 - 1.5 / steps)
        sgd_without_momentum = config.optimizer.name == "sgd" and config.optimizer.momentum == 0
        return lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.optimizer.lr,
            total_steps=steps,
            pct_start=pct_start,
            cycle_momentum=not sgd_without_momentum,
        )
    return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


@dataclass
class Session:
    """Everything that changes while training: model, optimizer, schedule, loss scaler."""

    model: nn.Module  # the module whose state is saved
    forward: nn.Module  # what is called: the model, its DDP wrapper, their torch.compile
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    cluster: Cluster = field(default_factory=Cluster)
    ema: AveragedModel | None = None  # the averaged weights, when train.ema is on
    compiled: bool = False
    warmup_seconds: float | None = None  # compile warm-up so far; None without compile
    train_warmed_up: bool = False  # the training graph has been compiled
    initialised: Loaded | None = None  # what train.init_from loaded, and how


def build_session(
    spec: Spec,
    config: TrainConfig,
    device: torch.device,
    steps_per_epoch: int,
    cluster: Cluster | None = None,
    initialise: bool = True,
) -> Session:
    """The same initial weights on every rank: the seed decides them, or train.init_from
    (DDP also broadcasts rank 0's); each rank's own random stream (dropout) starts from
    seed + rank. A resumed run does not `initialise`: its weights come from last.pt."""
    cluster = cluster or Cluster()
    torch.manual_seed(config.seed)
    model, plan = compile_spec(spec)  # checks the global batch; each rank trains on its share
    if cluster.distributed:
        raise_if_any(batchnorm_errors(plan, config.batch_size // cluster.world))
    initialised = (
        initialise_from(model, config.init_from) if config.init_from and initialise else None
    )
    freeze(model, config.freeze)
    model = model.to(device)
    if config.channels_last is True:  # `auto` is settled before a session is built
        model = model.to(memory_format=torch.channels_last)
    model, forward = wrap(model, cluster, device, config.sync_batchnorm)
    ema = weight_average(model, config.ema) if config.ema else None
    torch.manual_seed(config.seed + cluster.rank)
    trainable = (parameter for parameter in model.parameters() if parameter.requires_grad)
    optimizer = make_optimizer(trainable, config.optimizer)
    amp_dtype = autocast_dtype(config.amp, device)
    return Session(
        model=model,
        forward=cast(nn.Module, torch.compile(forward)) if config.compile else forward,
        compiled=config.compile,
        cluster=cluster,
        ema=ema,
        loss_fn=make_loss(output_kind(plan), config.label_smoothing),
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, config, steps_per_epoch),
        scaler=(
            torch.amp.GradScaler("cuda")
            if amp_dtype == torch.float16 and device.type == "cuda"
            else None
        ),
        device=device,
        amp_dtype=amp_dtype,
        channels_last=config.channels_last is True,
        initialised=initialised,
    )


def train_step(session: Session, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """One optimizer and schedule step; returns the batch's mean loss and correct count.
    The forward runs under autocast, the loss in fp32; weights stay fp32 throughout."""
    with autocast(session.device, session.amp_dtype):
        output = session.forward(prepare(x, session.channels_last))
    loss = session.loss_fn(output.float(), y)
    session.optimizer.zero_grad(set_to_none=True)
    if session.scaler is not None:
        session.scaler.scale(loss).backward()
        session.scaler.step(session.optimizer)
        session.scaler.update()
    else:
        loss.backward()
        session.optimizer.step()
    session.scheduler.step()
    if session.ema is not None:
        session.ema.update_parameters(session.model)
    return loss.detach(), (output.detach().argmax(dim=1) == y).sum()


class RunningLoss:
    """Per-batch losses kept on the device and checked every few batches, so a GPU is not
    stalled by a sync per batch; a NaN or inf is still reported with its exact batch. With
    several ranks the batches' sums are added up across them first, so all ranks agree."""

    def __init__(self, epoch: int, batches: int, cluster: Cluster | None = None):
        self.epoch = epoch
        self.batches = batches
        self.cluster = cluster or Cluster()
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
        n = len(self.pending)
        counts = torch.tensor(
            [count for _, _, count in self.pending],
            dtype=torch.float32,
            device=self.pending[0][0].device,
        )
        losses = torch.stack([loss.float() for loss, _, _ in self.pending])
        correct = torch.stack([correct for _, correct, _ in self.pending]).sum().float()
        summed = all_sum(
            torch.cat([losses * counts, counts, correct.reshape(1)]), self.cluster
        )  # one collective per check, not three
        totals, counts = summed[:n], summed[n : 2 * n]
        losses = totals / counts
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0, 0])
            raise Diverged(
                f"training diverged: the loss is {losses[bad].item()} at epoch {self.epoch}, "
                f"batch {self.checked + bad + 1} of {self.batches}; lower the learning rate "
                "(earlier checkpoints were kept)"
            )
        self.loss_sum += float(totals.sum())
        self.correct += int(summed[2 * n])
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


def train_epoch(
    session: Session, loader: BatchLoader, epoch: int, progress: EpochProgress
) -> TrainStats:
    session.model.train()
    running = RunningLoss(epoch, len(loader), session.cluster)
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
            progress.update(
                running.checked,
                running.mean_loss,
                running.accuracy,
                running.seen / max(elapsed, 1e-9),
            )
    synchronize(session.device)
    seconds = time.perf_counter() - start - warmup
    return TrainStats(running.mean_loss, running.accuracy, seconds, running.seen, lr, warmup)


def _timed_step(session: Session, x: Tensor, y: Tensor, running: RunningLoss) -> float:
    """The first step of a compiled model, timed on its own: it includes the compilation."""
    start = time.perf_counter()
    running.add(*train_step(session, x, y), len(y))
    synchronize(session.device)
    return time.perf_counter() - start


@torch.no_grad()
def warm_up_eval(session: Session, loader: BatchLoader) -> float:
    """Compile the evaluation graph before any epoch is timed; eval mode draws no random
    numbers and updates no BatchNorm statistics, so the run itself is unchanged."""
    start = time.perf_counter()
    x, _ = next(loader.batches(0))
    session.model.eval()
    with autocast(session.device, session.amp_dtype):
        session.forward(prepare(x, session.channels_last))
    synchronize(session.device)
    return time.perf_counter() - start


def evaluate_test_split(
    session: Session,
    loader: BatchLoader,
    num_classes: int,
    epoch: int | None = None,
    raw: bool = False,
) -> EvalStats:
    """The test split's statistics: of the weight average with train.ema (unless `raw`), of
    the weights being trained otherwise. A non-finite test loss means the run diverged."""
    # several ranks score their shares without DDP: its forward would sync buffers, a
    # collective that every rank must call equally often
    model = session.model if session.cluster.distributed else session.forward
    if session.ema is not None and not raw:
        model = session.ema.module
    stats = evaluate_model(
        model, loader, num_classes, session.amp_dtype, session.channels_last, session.cluster
    )
    if not math.isfinite(stats.loss):
        when = f"after epoch {epoch}" if epoch is not None else "on the final weights"
        raise Diverged(
            f"training diverged: the test loss is {stats.loss} {when}; "
            "lower the learning rate (earlier checkpoints were kept)"
        )
    return stats


def run_epoch(
    session: Session,
    loaders: Loaders,
    epoch: int,
    config: TrainConfig,
    num_classes: int,
    progress: bool,
) -> tuple[dict[str, Any], EvalStats]:
    """Train and test one epoch; returns its metrics row and the test statistics."""
    start = time.perf_counter()
    with EpochProgress(epoch, config.epochs, len(loaders.train), progress) as bar:
        train = train_epoch(session, loaders.train, epoch, bar)
        test_start = time.perf_counter()
        test = evaluate_test_split(session, loaders.test, num_classes, epoch)
        raw = (
            evaluate_test_split(session, loaders.test, num_classes, epoch, raw=True)
            if session.ema is not None
            else test
        )
        test_seconds = time.perf_counter() - test_start
        seconds = time.perf_counter() - start - train.warmup
        row = {
            "epoch": epoch,
            "train_loss": train.loss,
            "train_acc": train.accuracy,
            "test_loss": test.loss,
            "test_acc": test.accuracy,
            "raw_test_acc": raw.accuracy,  # of the trained weights, where test_acc is the EMA's
            "lr": train.lr,
            "seconds": seconds,
            "images_per_s": train.images / max(train.seconds, 1e-9),
            "train_seconds": train.seconds,  # compile warm-up excluded, as in `seconds`
            "test_seconds": test_seconds,  # the test pass (twice with train.ema: both weights)
        }
        bar.finish(row)
    return row, test
