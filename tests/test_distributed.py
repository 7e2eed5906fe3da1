"""torchrun / DistributedDataParallel on the CPU (gloo): two processes train the same weights as
one process with the same global batch, and only rank 0 writes the run folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, tiny_spec, write_spec
from netbuilder import read_spec
from netbuilder.data.loader import BatchLoader
from netbuilder.data.synthetic import make_synthetic
from netbuilder.data.transforms import BatchTransform
from netbuilder.training.checkpoint import load_checkpoint
from netbuilder.training.records import TIMING_FIELDS, read_metrics
from netbuilder.training.run import run_training


def plain_spec(tmp_path: Path, **train: object) -> Path:
    """tiny_spec without BatchNorm (per-rank statistics) and without dropout (per-rank draws),
    the two things that rightly differ between one process and several."""
    data = tiny_spec(train={"epochs": 2, "batch_size": 32, **train})
    data["layers"][0] = {"conv": {"out_channels": 4, "padding": 1, "activation": "relu"}}
    return write_spec(tmp_path / "spec.yaml", data)


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            str(ROOT / "cli.py"),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.slow
def test_two_processes_train_the_weights_of_one(tmp_path: Path) -> None:
    spec_path = plain_spec(tmp_path, transforms={"augment": {"rotation": 10, "translate": 0.1}})
    done = torchrun("train", str(spec_path), "--out", str(tmp_path / "two"), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("epoch 2/2") == 1  # rank 0 alone reports
    run_training(read_spec(spec_path), tmp_path / "one", progress=False)
    two, one = (load_checkpoint(tmp_path / name / "last.pt") for name in ("two", "one"))
    for key, weight in one["model"].items():
        torch.testing.assert_close(two["model"][key], weight, rtol=0, atol=1e-5)
    rows = [
        [
            {k: v for k, v in row.items() if k not in TIMING_FIELDS}
            for row in read_metrics(tmp_path / name / "metrics.csv")
        ]
        for name in ("two", "one")
    ]
    for a, b in zip(*rows, strict=True):
        assert a["test_acc"] == b["test_acc"]
        assert abs(float(a["train_loss"]) - float(b["train_loss"])) < 1e-5
    assert len(two["rng"]["ranks"]) == 2 and len(one["rng"]["ranks"]) == 1
    assert not torch.equal(two["rng"]["ranks"][0]["torch"], two["rng"]["ranks"][1]["torch"])

    def files(run: str) -> list[str]:  # TensorBoard names its files by time, host and pid
        return sorted(p.name.split(".out.")[0] for p in (tmp_path / run).iterdir())

    assert files("two") == files("one")


@pytest.mark.slow
@pytest.mark.slow
def test_a_batch_that_does_not_divide_among_the_processes_is_one_line(tmp_path: Path) -> None:
    spec_path = plain_spec(tmp_path, batch_size=33)
    done = torchrun("train", str(spec_path), "--out", str(tmp_path / "run"), "--no-progress")
    assert done.returncode != 0
    assert (
        "error: train.batch_size 33 (the global batch) must divide evenly among the 2 "
        "processes" in done.stderr
    )
    assert "rank 1: error: train.batch_size 33" in done.stderr
    assert "netbuilder/" not in done.stderr  # torchrun reports the exit codes; we print no trace


def test_each_rank_gets_its_share_of_the_global_batch_with_the_same_augmentation() -> None:
    dataset = make_synthetic(40, seed=0)
    transform = BatchTransform(rotation=20.0, translate=0.1)
    whole = list(BatchLoader(dataset, 10, transform=transform, seed=3).batches(2))
    parts = [
        list(BatchLoader(dataset, 10, transform=transform, seed=3, part=(rank, 3)).batches(2))
        for rank in range(3)
    ]
    assert all(len(p) == len(whole) for p in parts)  # the same number of steps on every rank
    for index, (x, y) in enumerate(whole):
        torch.testing.assert_close(torch.cat([p[index][0] for p in parts]), x)
        assert torch.equal(torch.cat([p[index][1] for p in parts]), y)
    assert [len(p[0][1]) for p in parts] == [4, 3, 3]
