"""`train.amp: auto` and `train.channels_last: auto`: the fastest setting for this spec on this
machine, measured rather than guessed. Before the first epoch each candidate trains a few
steps on a synthetic batch of the real shape (speed does not depend on pixel values), in
rounds that interleave the candidates so a busy machine slows them alike; the fastest median
wins. Timing runs inside `torch.random.fork_rng`, so the run's weights, shuffling and dropout
are the same whichever candidate wins. The chosen values replace `auto` in the config, so
the run's spec.yaml and checkpoints record them and a resume reuses them.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from ..spec.config import MEASURED, TrainConfig
from ..spec.types import Spec
from .checkpoint import load_checkpoint
from .device import synchronize
from .distributed import Cluster, from_main

WARMUP_STEPS = 2  # the first steps allocate and pick kernels: never timed
STEPS_PER_ROUND = 3  # steps timed per candidate and round
SPEED_FILE = "speed.json"  # in the run folder: each candidate's rate and the one kept
ROUNDS = 3  # interleaved rounds; the median step of all of them is the candidate's rate


@dataclass(frozen=True)
class Candidate:
    amp: str  # none, bf16 or fp16
    channels_last: bool

    @property
    def label(self) -> str:
        precision = "fp32" if self.amp == "none" else self.amp
        return f"{precision} channels_last" if self.channels_last else precision


@dataclass(frozen=True)
class SpeedChoice:
    """The candidates' measured training rates (images/s) and the one kept."""

    rates: dict[Candidate, float]

    @property
    def best(self) -> Candidate:
        return max(self.rates, key=lambda candidate: self.rates[candidate])

    def describe(self) -> str:
        measured = ", ".join(
            f"{candidate.label} {rate:,.0f}" for candidate, rate in self.rates.items()
        )
        return f"speed: {self.best.label} kept (measured img/s: {measured})"

    def to_dict(self) -> dict[str, object]:
        return {
            "chosen": self.best.label,
            "images_per_s": {candidate.label: round(r, 1) for candidate, r in self.rates.items()},
        }


def is_measured(config: TrainConfig) -> bool:
    return MEASURED in (config.amp, config.channels_last)


def precisions(device: torch.device) -> tuple[str, ...]:
    """The autocast precisions worth timing on `device` (fp16 only on CUDA, where it is
    the tensor-core format; bf16 wherever the device runs it)."""
    if device.type == "cuda":
        return ("none", "bf16", "fp16") if torch.cuda.is_bf16_supported() else ("none", "fp16")
    if device.type == "mps":
        return ("none",)
    return ("none", "bf16")


def candidates(config: TrainConfig, device: torch.device) -> list[Candidate]:
    """What `auto` chooses among; a setting the spec names stays fixed. With both on auto:
    fp32 in both layouts, reduced precision channels-last only (its fast kernels are NHWC)."""
    amps = precisions(device) if config.amp == MEASURED else (str(config.amp),)
    layouts = (False, True) if config.channels_last == MEASURED else (config.channels_last is True,)
    both = config.amp == MEASURED and config.channels_last == MEASURED
    return [
        Candidate(amp, layout)
        for amp in amps
        for layout in layouts
        if not (both and amp != "none" and not layout)
    ]


def keep(config: TrainConfig, first: TrainConfig) -> TrainConfig:
    """`config` with each `auto` replaced by what the run's first part settled it to."""
    return replace(
        config,
        amp=first.amp if config.amp == MEASURED else config.amp,
        channels_last=(
            first.channels_last if config.channels_last == MEASURED else config.channels_last
        ),
    )


def apply(config: TrainConfig, candidate: Candidate) -> TrainConfig:
    return replace(config, amp=candidate.amp, channels_last=candidate.channels_last)


def measure(spec: Spec, config: TrainConfig, device: torch.device) -> SpeedChoice:
    """Each candidate's training rate on this machine, in images per second."""
    from .loop import build_session, train_step  # the loop imports this module's users

    options = candidates(config, device)
    batch = config.batch_size
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        generator = torch.Generator().manual_seed(0)
        x = torch.randn((batch, *spec.input_shape), generator=generator).to(device)
        y = torch.randint(0, spec.num_classes, (batch,), generator=generator).to(device)
        sessions = {
            option: build_session(
                spec,
                replace(apply(config, option), compile=False, init_from=None, ema=0.0),
                device,
                steps_per_epoch=WARMUP_STEPS + ROUNDS * STEPS_PER_ROUND,
            )
            for option in options
        }
        steps: dict[Candidate, list[float]] = {option: [] for option in options}
        for session in sessions.values():
            for _ in range(WARMUP_STEPS):
                train_step(session, x, y)
        for _ in range(ROUNDS):
            for option, session in sessions.items():
                for _ in range(STEPS_PER_ROUND):
                    synchronize(device)
                    start = time.perf_counter()
                    train_step(session, x, y)
                    synchronize(device)
                    steps[option].append(time.perf_counter() - start)
    return SpeedChoice({option: batch / statistics.median(steps[option]) for option in options})


def settle(
    spec: Spec,
    config: TrainConfig,
    device: torch.device,
    resumed_from: Path | None,
    cluster: Cluster,
) -> tuple[TrainConfig, SpeedChoice | None]:
    """`auto` made concrete: a resume keeps what its first run chose (read back from its
    last.pt), a new run measures on the main rank and every rank follows."""
    if not is_measured(config):
        return config, None
    if resumed_from is not None and resumed_from.exists():
        first = load_checkpoint(resumed_from, map_location="cpu")["train_config"]
        return keep(config, TrainConfig.from_data(first)), None
    measured = measure(spec, config, device) if cluster.is_main else None
    choice: SpeedChoice = from_main(measured, cluster)
    return apply(config, choice.best), choice


def record(run_dir: Path, choice: SpeedChoice, progress: bool) -> None:
    """speed.json in the run folder, and the one line before the first epoch."""
    (run_dir / SPEED_FILE).write_text(json.dumps(choice.to_dict(), indent=2) + "\n")
    if progress:
        tqdm.write(choice.describe(), file=sys.stderr)
