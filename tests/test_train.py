"""Tests for netbuilder.training and netbuilder.records: config, loss, schedules, a short
synthetic run and its run folder, determinism, divergence, resume after a real SIGKILL."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

from conftest import ROOT, tiny_spec, write_spec
from netbuilder import read_spec
from netbuilder.compiler import compile_spec
from netbuilder.compiler.heads import output_kind
from netbuilder.data.transforms import BatchTransform
from netbuilder.errors import NetbuilderError
from netbuilder.spec.config import TrainConfig
from netbuilder.training import loop as loop_module
from netbuilder.training.averaging import warmup_decay, weight_average
from netbuilder.training.checkpoint import load_checkpoint
from netbuilder.training.evaluation import make_loss
from netbuilder.training.inputs import make_transform
from netbuilder.training.loop import make_optimizer, make_scheduler
from netbuilder.training.records import METRIC_FIELDS, TIMING_FIELDS, read_metrics
from netbuilder.training.run import run_training

MNIST_RAW = ROOT.parent / "shared" / "data" / "MNIST" / "raw"
RUN_FILES = (
    "spec.yaml",
    "metrics.csv",
    "curves.png",
    "confusion.png",
    "confusion.csv",
    "summary.txt",
    "last.pt",
    "best.pt",
)
SYNTHETIC_BATCHES = 512 // 32  # default synthetic training set, batch size 32


def load_spec_data(tmp_path: Path, **kwargs: Any):
    return read_spec(write_spec(tmp_path / "spec.yaml", tiny_spec(**kwargs)))


def model_state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def without_timing(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rows]


# ---------------------------------------------------------------- config


def test_evaluation_runs_in_inference_mode() -> None:
    """No autograd graph and no version counters for the test pass."""
    from netbuilder.data.loader import BatchLoader, ImageDataset
    from netbuilder.training.evaluation import evaluate_model

    seen: list[bool] = []

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.is_inference_mode_enabled())
            return x.flatten(1)[:, :10]

    images = torch.zeros(8, 1, 4, 4, dtype=torch.uint8)
    dataset = ImageDataset(images, torch.zeros(8, dtype=torch.long), [str(i) for i in range(10)])
    stats = evaluate_model(Probe(), BatchLoader(dataset, 4, train=False), 10)
    assert seen == [True, True] and int(stats.confusion.sum()) == 8


def test_train_config_fills_defaults_under_partial_sections(tmp_path: Path) -> None:
    spec = load_spec_data(tmp_path, train={"optimizer": {"name": "adam"}})
    config = spec.train
    assert isinstance(config, TrainConfig)
    assert config.optimizer.name == "adam"
    assert config.optimizer.lr == 0.1  # from the spec
    assert config.optimizer.weight_decay == 0.0  # the declared default
    assert config.schedule.name == "none"
    assert config.transforms.augment.scale == (1.0, 1.0)
    assert config.to_dict()["optimizer"]["nesterov"] is False
    assert config.to_dict()["transforms"]["augment"]["scale"] == [1.0, 1.0]  # plain YAML data
    assert TrainConfig.from_data(config.to_dict()) == config


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"transforms": {"normalize": {"mean": [0.1, 0.2]}}}, "normalize.mean: has 2 values"),
        ({"schedule": {"name": "onecycle", "warmup_epochs": 1}}, "set pct_start"),
        ({"schedule": {"warmup_epochs": 2}}, "must be less than train.epochs"),
        ({"optimizer": {"momentum": 0, "nesterov": True}}, "nesterov: .* needs momentum > 0"),
    ],
)
def test_inconsistent_train_settings_are_refused_when_the_spec_is_read(
    tmp_path: Path, train: dict, message: str
) -> None:
    with pytest.raises(NetbuilderError, match=message):
        load_spec_data(tmp_path, train=train)


def test_train_rules_are_enforced_by_the_runner_too(tmp_path: Path) -> None:
    """A Spec changed in Python after validation meets the same rules before training."""
    spec = load_spec_data(tmp_path)
    schedule = dataclasses.replace(spec.train.schedule, warmup_epochs=1.0)
    bad = dataclasses.replace(spec, train=spec.train.replace(epochs=1, schedule=schedule))
    with pytest.raises(NetbuilderError, match=r"must be less than train\.epochs"):
        run_training(bad, tmp_path / "run", progress=False)


# ---------------------------------------------------------------- loss and schedules


@pytest.mark.parametrize("head", ["log_softmax", None])
def test_loss_is_cross_entropy_for_logits_and_log_probabilities(
    tmp_path: Path, head: str | None
) -> None:
    _, plan = compile_spec(load_spec_data(tmp_path, head=head), device="meta")
    assert isinstance(make_loss(output_kind(plan)), nn.CrossEntropyLoss)


def test_softmax_head_is_refused(tmp_path: Path) -> None:
    spec = load_spec_data(tmp_path, head="softmax")
    with pytest.raises(NetbuilderError, match="log_softmax"):
        run_training(spec, tmp_path / "run", progress=False)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_on_log_probabilities_equals_it_on_logits(smoothing: float) -> None:
    """Why one loss serves both heads: log_softmax is idempotent."""
    logits = torch.randn(8, 10, generator=torch.Generator().manual_seed(0)) * 5
    target = torch.arange(8)
    loss = nn.CrossEntropyLoss(label_smoothing=smoothing)
    assert torch.allclose(loss(logits.log_softmax(dim=1), target), loss(logits, target), atol=1e-6)


def lr_trace(
    tmp_path: Path, schedule: dict[str, Any], steps_per_epoch: int = 10, epochs: int = 4
) -> list[float]:
    spec = load_spec_data(tmp_path, train={"epochs": epochs, "schedule": schedule})
    config = spec.train
    optimizer = make_optimizer(nn.Linear(2, 2).parameters(), config.optimizer)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch)
    lrs = []
    for _ in range(steps_per_epoch * epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_schedules_step_per_batch(tmp_path: Path) -> None:
    assert set(lr_trace(tmp_path, {"name": "none"})) == {0.1}
    step = lr_trace(tmp_path, {"name": "step", "step_size": 2, "gamma": 0.5})
    assert step[19] == pytest.approx(0.1) and step[20] == pytest.approx(0.05)
    cosine = lr_trace(tmp_path, {"name": "cosine"})
    assert cosine[0] == pytest.approx(0.1) and cosine[-1] < 0.001
    assert all(a >= b for a, b in itertools.pairwise(cosine))
    onecycle = lr_trace(tmp_path, {"name": "onecycle", "pct_start": 0.25})
    assert max(onecycle) == pytest.approx(0.1) and onecycle.index(max(onecycle)) in (9, 10)
    warm = lr_trace(tmp_path, {"name": "cosine", "warmup_epochs": 1})
    assert warm[0] == pytest.approx(0.01) and warm[10] == pytest.approx(0.1)


def test_transform_resizes_and_repeats_grey_channels() -> None:
    transform = BatchTransform(size=(20, 24), channels=3, mean=(0.5, 0.5, 0.5), std=(0.5,) * 3)
    batch = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    out = transform(batch)
    assert out.shape == (2, 3, 20, 24)
    assert torch.allclose(out, torch.ones_like(out))


# ---------------------------------------------------------------- runs


@pytest.mark.slow
def test_short_run_writes_the_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = load_spec_data(tmp_path, train={"epochs": 3})
    result = run_training(spec, tmp_path / "run")  # stderr is no TTY: plain lines
    run_dir = tmp_path / "run"
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.glob(".*.tmp")), "temp files left behind"
    rows = read_metrics(run_dir / "metrics.csv")
    assert tuple(rows[0]) == METRIC_FIELDS
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    for row in rows:  # the epoch's time split into its training and its test pass
        train_s, test_s, total = (
            float(row[k]) for k in ("train_seconds", "test_seconds", "seconds")
        )
        assert train_s > 0 and test_s > 0 and train_s + test_s <= total + 1e-6
    assert float(rows[-1]["test_acc"]) > 0.5  # chance is 0.1
    assert result.best_test_acc == max(float(row["test_acc"]) for row in rows)
    for image in ("curves.png", "confusion.png"):
        assert (run_dir / image).read_bytes().startswith(b"\x89PNG")
    confusion = (run_dir / "confusion.csv").read_text().splitlines()
    assert (
        len(confusion) == 11
        and sum(sum(map(int, line.split(",")[1:])) for line in confusion[1:]) == 256
    )
    saved = yaml.safe_load((run_dir / "spec.yaml").read_text())
    assert saved["train"]["optimizer"]["nesterov"] is False  # full config, defaults included
    assert read_spec(run_dir / "spec.yaml").name == "tiny"  # and still a valid spec
    assert "conv_bn1" in (run_dir / "summary.txt").read_text()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("(train " in line and "s, test " in line for line in lines)  # the split


@pytest.mark.slow
def test_same_seed_gives_identical_weights(tmp_path: Path) -> None:
    train = {"epochs": 1, "transforms": {"augment": {"rotation": 10, "translate": 0.1}}}
    spec = load_spec_data(tmp_path, dropout=0.2, train=train)
    for name in ("a", "b"):
        run_training(spec, tmp_path / name, progress=False)
    assert_same_weights(
        model_state(tmp_path / "a" / "last.pt"), model_state(tmp_path / "b" / "last.pt")
    )
    other = load_spec_data(tmp_path, dropout=0.2, train={**train, "seed": 2})
    run_training(other, tmp_path / "c", progress=False)
    assert not torch.equal(
        model_state(tmp_path / "a" / "last.pt")["conv1.weight"],
        model_state(tmp_path / "c" / "last.pt")["conv1.weight"],
    )


@pytest.mark.slow
def test_rgb_non_square_spec_trains_on_grey_data(tmp_path: Path) -> None:
    spec = load_spec_data(
        tmp_path,
        channels=3,
        size=[12, 16],
        train={"epochs": 1, "transforms": {"normalize": {"mean": [0.1, 0.1, 0.1], "std": [0.2]}}},
    )
    result = run_training(spec, tmp_path / "run", progress=False)
    assert result.epochs == 1


def test_class_count_must_match_the_dataset(tmp_path: Path) -> None:
    data = tiny_spec()
    data["num_classes"] = 7
    spec = read_spec(write_spec(tmp_path / "spec.yaml", data))
    with pytest.raises(NetbuilderError, match=r"num_classes 7 .* has 10 classes"):
        run_training(spec, tmp_path / "run", progress=False)


@pytest.mark.slow
def test_refuses_to_overwrite_a_run_unless_asked(tmp_path: Path) -> None:
    spec = load_spec_data(tmp_path, train={"epochs": 1})
    run_training(spec, tmp_path / "run", progress=False)
    with pytest.raises(NetbuilderError, match=r"already holds a run .*--overwrite"):
        run_training(spec, tmp_path / "run", progress=False)
    (tmp_path / "run" / "best.pt").write_bytes(b"stale")
    run_training(spec, tmp_path / "run", overwrite=True, progress=False)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 1


def test_huge_learning_rate_stops_with_the_epoch_and_batch(tmp_path: Path) -> None:
    spec = load_spec_data(tmp_path, train={"epochs": 1, "optimizer": {"lr": 1e30}})
    with pytest.raises(NetbuilderError, match=r"diverged: .* at epoch 1, batch \d+ of 16"):
        run_training(spec, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()


class PoisonAfter(nn.Module):
    """Training loss that turns NaN after `good` batches; evaluation is left alone."""

    def __init__(self, inner: nn.Module, good: int):
        super().__init__()
        self.inner, self.good, self.calls = inner, good, 0

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.inner(output, target)
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls > self.good:
                return loss * float("nan")
        return loss


def test_nan_loss_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_make = loop_module.make_loss
    monkeypatch.setattr(
        loop_module,
        "make_loss",
        lambda head, smoothing=0.0: PoisonAfter(real_make(head, smoothing), SYNTHETIC_BATCHES + 2),
    )
    spec = load_spec_data(tmp_path, train={"epochs": 3})
    run_dir = tmp_path / "run"
    after_epoch: list[bytes] = []
    with pytest.raises(NetbuilderError, match="at epoch 2, batch 3 of 16"):
        run_training(
            spec,
            run_dir,
            progress=False,
            on_epoch=lambda row: after_epoch.append((run_dir / "last.pt").read_bytes()),
        )
    assert len(after_epoch) == 1
    assert (run_dir / "last.pt").read_bytes() == after_epoch[0]
    assert len(read_metrics(run_dir / "metrics.csv")) == 1
    assert not list(run_dir.glob(".*.tmp"))


# ---------------------------------------------------------------- CLI


def test_unknown_dataset_is_a_one_line_error(tmp_path: Path, run_cli) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec())
    result = run_cli(
        "train",
        str(spec),
        "--set",
        "train.dataset=cifar10",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    )
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    assert "cifar10" in result.err and "synthetic" in result.err


def test_missing_mnist_files_are_named(tmp_path: Path, run_cli) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(train={"dataset": "mnist"}))
    result = run_cli(
        "train",
        str(spec),
        "--data-dir",
        str(tmp_path / "nothing"),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    )
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    assert "MNIST/raw/train-images-idx3-ubyte" in result.err


@pytest.mark.slow
def test_train_flags_become_overrides(tmp_path: Path, run_cli) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec())
    result = run_cli(
        "train",
        str(spec),
        "--epochs",
        "1",
        "--lr",
        "1e-2",
        "--batch-size",
        "64",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    )
    assert result.code == 0, result.err
    assert result.out.startswith("epoch 1/1: ")
    saved = yaml.safe_load((tmp_path / "run" / "spec.yaml").read_text())["train"]
    assert (saved["epochs"], saved["batch_size"], saved["seed"]) == (1, 64, 3)
    assert saved["optimizer"]["lr"] == 0.01


# ---------------------------------------------------------------- resume after SIGKILL


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"training exited early: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.005)


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    epochs = 4
    train = {
        "epochs": epochs,
        "schedule": {"name": "cosine", "warmup_epochs": 1},
        "transforms": {"augment": {"rotation": 10, "translate": 0.1}},
    }
    spec_path = write_spec(tmp_path / "spec.yaml", tiny_spec(dropout=0.2, train=train))
    run_dir = tmp_path / "killed"
    command = [sys.executable, str(ROOT / "cli.py"), "train", str(spec_path), "--no-progress"]
    process = subprocess.Popen(
        [*command, "--out", str(run_dir)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(run_dir / "last.pt", process)
        process.kill()  # SIGKILL: no cleanup, as after a crash or an OOM kill
    finally:
        process.kill()
        process.communicate()
    killed_at = load_checkpoint(run_dir / "last.pt")["epoch"]
    assert 1 <= killed_at < epochs, "the run finished before it could be killed"

    resumed = subprocess.run(
        [*command, "--resume", str(run_dir)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(f"epoch {killed_at + 1}/{epochs}: ")

    spec = read_spec(spec_path)
    run_training(spec, tmp_path / "straight", progress=False)
    assert_same_weights(
        model_state(run_dir / "last.pt"), model_state(tmp_path / "straight" / "last.pt")
    )
    assert without_timing(read_metrics(run_dir / "metrics.csv")) == without_timing(
        read_metrics(tmp_path / "straight" / "metrics.csv")
    )
    assert not list(run_dir.glob(".*.tmp"))


@pytest.mark.slow
def test_resume_needs_the_same_training_settings(tmp_path: Path) -> None:
    spec = load_spec_data(tmp_path, train={"epochs": 1})
    run_training(spec, tmp_path / "run", progress=False)
    changed = load_spec_data(tmp_path, train={"epochs": 1, "optimizer": {"lr": 0.5}})
    with pytest.raises(NetbuilderError, match=r"train\.optimizer\.lr is 0\.5 now but was 0\.1"):
        run_training(changed, tmp_path / "run", resume=True, progress=False)


@pytest.mark.slow
def test_resuming_a_finished_run_only_rewrites_the_records(tmp_path: Path) -> None:
    spec = load_spec_data(tmp_path, train={"epochs": 1})
    first = run_training(spec, tmp_path / "run", progress=False)
    again = run_training(spec, tmp_path / "run", resume=True, progress=False)
    assert again.history == first.history
    assert again.final_test_acc == first.final_test_acc


# ---------------------------------------------------------------- real MNIST


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not MNIST_RAW.is_dir(), reason="needs ../shared/data/MNIST/raw")
def test_one_epoch_on_real_mnist(tmp_path: Path) -> None:
    spec = load_spec_data(
        tmp_path,
        size=28,
        train={
            "dataset": "mnist",
            "epochs": 1,
            "batch_size": 256,
            "transforms": {"normalize": {"mean": [0.1307], "std": [0.3081]}},
        },
    )
    result = run_training(spec, tmp_path / "run", progress=False, data_dir=MNIST_RAW.parents[1])
    assert result.final_test_acc > 0.25  # a 414-parameter net after one epoch; chance is 0.1
    assert make_transform(spec, result.config).size == (28, 28)


@pytest.mark.slow
def test_ema_weights_are_tested_saved_and_resumed_exactly(tmp_path: Path) -> None:
    train = {"epochs": 2, "ema": 0.9}
    spec = load_spec_data(tmp_path, dropout=0.2, train=train)
    straight = run_training(spec, tmp_path / "straight", progress=False)
    payload = load_checkpoint(tmp_path / "straight" / "last.pt")
    model, raw = payload["model"], payload["training_model"]
    assert not torch.equal(model["conv1.weight"], raw["conv1.weight"])  # an average, not the last
    assert payload["ema_state"]["n_averaged"].item() == 2 * SYNTHETIC_BATCHES
    from netbuilder.inference import evaluate_checkpoint

    assert (
        evaluate_checkpoint(tmp_path / "straight" / "last.pt", device="cpu").accuracy
        == straight.final_test_acc
    )  # the tested weights are the saved ones
    with pytest.raises(KeyboardInterrupt):  # stopped after its first epoch's checkpoint
        run_training(spec, tmp_path / "resumed", progress=False, on_epoch=_stop)
    run_training(spec, tmp_path / "resumed", resume=True, progress=False)
    resumed = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert_same_weights(resumed["model"], model)
    assert_same_weights(resumed["training_model"], raw)


def _stop(row: dict[str, Any]) -> None:
    raise KeyboardInterrupt


# ---------------------------------------------------------------- the weight average


def test_the_average_warms_up_then_settles_at_its_decay() -> None:
    decays = [float(warmup_decay(0.999, torch.tensor(n))) for n in (0, 10, 90, 10_000, 10**6)]
    assert decays[:3] == pytest.approx([0.1, 0.55, 0.91])
    assert decays[3:] == [pytest.approx(0.999), pytest.approx(0.999)]


def test_an_average_of_a_few_hundred_steps_holds_little_of_the_start() -> None:
    """What made a 1-epoch model5 test at 11%: a plain 0.999 average still held 63% of the
    random start after 469 steps; warmed up, it holds almost none of it."""
    model = nn.Linear(4, 1, bias=False)
    nn.init.zeros_(model.weight)
    average = weight_average(model, 0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)  # the trained weights move away from the start at once
    for _ in range(469):
        average.update_parameters(model)
    assert average.module.weight.mean().item() > 0.97


@pytest.mark.slow
def test_best_checkpoint_is_never_worse_than_the_trained_weights(tmp_path: Path) -> None:
    spec = load_spec_data(tmp_path, dropout=0.1, train={"epochs": 3, "ema": 0.999})
    result = run_training(spec, tmp_path / "run", progress=False)
    best = result.history[result.best_epoch - 1]
    from netbuilder.inference import evaluate_checkpoint

    saved = evaluate_checkpoint(tmp_path / "run" / "best.pt", device="cpu").accuracy
    assert saved == max(best["test_acc"], best["raw_test_acc"]) == result.best_test_acc
    assert saved >= best["raw_test_acc"]
    assert max(row["raw_test_acc"] for row in result.history) <= saved


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not MNIST_RAW.is_dir(), reason="needs ../shared/data/MNIST/raw")
def test_one_epoch_of_model5_reports_the_truth(tmp_path: Path) -> None:
    """`train specs/model5.yaml --epochs 1`: its average reports what its weights can do."""
    spec = read_spec(ROOT / "specs" / "model5.yaml", ["train.epochs=1"])
    result = run_training(spec, tmp_path / "run", progress=False, data_dir=MNIST_RAW.parents[1])
    (row,) = result.history
    assert result.final_test_acc >= 0.97
    assert abs(row["test_acc"] - row["raw_test_acc"]) < 0.01


# ---------------------------------------------------------------- requires:


def requiring(tmp_path: Path, requires: dict[str, Any], **train: Any) -> Path:
    data = tiny_spec(train={"epochs": 1, **train})
    data["requires"] = requires
    return write_spec(tmp_path / "spec.yaml", data)


@pytest.mark.parametrize(
    ("requires", "message"),
    [
        (
            {"max_params": 100},
            "requires.max_params: the network has 414 parameters, more than the 100 required",
        ),
        (
            {"min_receptive_field": 40},
            "requires.min_receptive_field: the network has 22 pixels "
            "of receptive field, less than the 40 required",
        ),
        ({"max_macs": 1000}, "requires.max_macs: the network has"),
        ({"max_peak_memory": 100}, "requires.max_peak_memory: the network has"),
        ({"max_epochs": 0.5}, "expected an integer"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "build"])
def test_a_broken_budget_is_a_located_error(run_cli, tmp_path, requires, message, command):
    result = run_cli(command, str(requiring(tmp_path, requires)))
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"{tmp_path / 'spec.yaml'}:") and message in line


def test_a_spec_within_its_budgets_validates(run_cli, tmp_path) -> None:
    spec = requiring(tmp_path, {"max_params": 414, "min_receptive_field": 22, "max_epochs": 3})
    assert run_cli("validate", str(spec)).code == 0


def test_too_many_epochs_for_the_budget_is_refused(run_cli, tmp_path) -> None:
    result = run_cli("validate", str(requiring(tmp_path, {"max_epochs": 1}, epochs=2)))
    assert result.code == 2 and "requires.max_epochs: train.epochs is 2" in result.err


@pytest.mark.slow
def test_a_run_that_misses_its_accuracy_says_so_and_records_it(run_cli, tmp_path) -> None:
    spec = requiring(tmp_path, {"min_accuracy": 99.9, "over_last_epochs": 2}, epochs=2)
    result = run_cli("train", str(spec), "--out", str(tmp_path / "run"), "--no-progress")
    assert result.code == 3
    (line,) = result.err.strip().splitlines()
    assert "requires.min_accuracy: the last 2 epochs reached" in line
    assert "less than the 99.90% required" in line
    record = json.loads((tmp_path / "run" / "requirements.json").read_text())
    assert record["met"] is False and record["requires"]["min_accuracy"] == 99.9


@pytest.mark.slow
def test_a_budget_breaking_spec_never_trains(tmp_path) -> None:
    spec = read_spec(requiring(tmp_path, {"max_params": 100}))
    with pytest.raises(NetbuilderError, match=r"requires\.max_params"):
        run_training(spec, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
