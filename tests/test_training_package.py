"""The training package's promises: the config declared once, your
own images (imagefolder) end to end, bf16 autocast on CPU, TensorBoard events when installed."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from conftest import ROOT, SHAPES, draw, tiny_spec, write_spec
from netbuilder import read_spec
from netbuilder.data.imagefolder import CACHE_DIR
from netbuilder.errors import NetbuilderError
from netbuilder.inference import predict
from netbuilder.spec.config import TrainConfig
from netbuilder.training.checkpoint import load_checkpoint
from netbuilder.training.device import autocast_dtype
from netbuilder.training.run import run_training

PACKAGE = ROOT / "netbuilder"


def leaf_fields(data: dict, prefix: str = "") -> list[str]:
    names = []
    for key, value in data.items():
        names += leaf_fields(value, f"{key}.") if isinstance(value, dict) else [key]
    return names


def test_train_fields_are_declared_in_one_module_only() -> None:
    """Where the train config was declared a second time (the schema, the CLI's flags, the
    trainer's defaults), no field is spelt out as a string: they all read spec/config.py."""
    # words that are also other things: a block parameter or CLI option (name, seed, device,
    # dataset), the metrics column `lr`
    names = set(leaf_fields(TrainConfig().to_dict())) - {"name", "seed", "device", "dataset", "lr"}
    consumers = [
        PACKAGE / "spec" / "schema.py",
        PACKAGE / "cli.py",
        PACKAGE / "cli_train.py",
        *(PACKAGE / "training").glob("*.py"),
    ]
    for path in consumers:
        text = path.read_text()
        quoted = [n for n in names if re.search(rf"[\"']{n}[\"']", text)]
        assert not quoted, f"{path.relative_to(ROOT)} spells train fields {quoted}"


@pytest.mark.slow
def test_imagefolder_trains_predicts_names_and_caches(
    image_folder: Path, tmp_path: Path, run_cli
) -> None:
    data = tiny_spec(
        size=16,
        train={"dataset": "imagefolder", "epochs": 12, "batch_size": 8, "optimizer": {"lr": 0.05}},
    )
    data["num_classes"] = 3
    del data["train"]["transforms"]  # statistics come from the training images
    spec_path = write_spec(tmp_path / "shapes.yaml", data)
    result = run_cli(
        "train",
        str(spec_path),
        "--data-dir",
        str(image_folder),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    )
    assert result.code == 0, result.err
    checkpoint = load_checkpoint(tmp_path / "run" / "best.pt")
    assert checkpoint["class_names"] == list(SHAPES)
    recorded = yaml.safe_load((tmp_path / "run" / "spec.yaml").read_text())["train"]
    mean, std = (
        recorded["transforms"]["normalize"]["mean"],
        recorded["transforms"]["normalize"]["std"],
    )
    assert len(mean) == 1 and 0.1 < mean[0] < 0.6 and 0.1 < std[0] < 0.6
    assert checkpoint["best_test_acc"] > 0.6  # chance is 1/3

    cached = sorted((image_folder / CACHE_DIR).glob("*.pt"))
    assert [p.name.split("-")[0] for p in cached] == ["test", "train"]
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = run_cli(
        "train",
        str(spec_path),
        "--data-dir",
        str(image_folder),
        "--out",
        str(tmp_path / "again"),
        "--no-progress",
        "--epochs",
        "1",
    )
    assert again.code == 0, again.err
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # read back, not rebuilt
    Image.fromarray(draw("circle", 50)).save(image_folder / "train" / "circle" / "new.png")
    assert (
        run_cli(
            "train",
            str(spec_path),
            "--data-dir",
            str(image_folder),
            "--out",
            str(tmp_path / "third"),
            "--no-progress",
            "--epochs",
            "1",
        ).code
        == 0
    )
    assert len(list((image_folder / CACHE_DIR).glob("train-*.pt"))) == 2  # a new file list

    picture = tmp_path / "query.png"
    Image.fromarray(draw("stripes", 101)).save(picture)
    (best,) = predict(tmp_path / "run" / "best.pt", [picture], top_k=3)
    assert {score.name for score in best.top} == set(SHAPES)
    printed = run_cli("predict", str(tmp_path / "run" / "best.pt"), str(picture))
    assert printed.code == 0 and "stripes" in printed.out


def test_imagefolder_errors_are_one_line(image_folder: Path, tmp_path: Path) -> None:
    data = tiny_spec(size=16, train={"dataset": "imagefolder", "epochs": 1})
    data["num_classes"] = 3
    spec = read_spec(write_spec(tmp_path / "s.yaml", data))
    with pytest.raises(NetbuilderError, match="has no train/ folder"):
        run_training(spec, tmp_path / "a", data_dir=tmp_path / "nowhere", progress=False)
    (image_folder / "val" / "dog").mkdir()
    with pytest.raises(NetbuilderError, match="class folders the training set lacks: dog"):
        run_training(spec, tmp_path / "b", data_dir=image_folder, progress=False)
    (image_folder / "val" / "dog").rmdir()
    data["num_classes"] = 10
    spec = read_spec(write_spec(tmp_path / "s.yaml", data))
    with pytest.raises(NetbuilderError, match="num_classes 10 but dataset 'imagefolder' has 3"):
        run_training(spec, tmp_path / "c", data_dir=image_folder, progress=False)


@pytest.mark.slow
def test_bf16_autocast_trains_on_cpu_with_fp32_weights(tmp_path: Path) -> None:
    spec = read_spec(write_spec(tmp_path / "s.yaml", tiny_spec(train={"epochs": 2, "amp": "bf16"})))
    result = run_training(spec, tmp_path / "run", progress=False)
    weights = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    assert all(t.dtype in (torch.float32, torch.int64) for t in weights.values())
    assert result.final_test_acc > 0.3
    assert "precision: bfloat16" in (tmp_path / "run" / "summary.txt").read_text()


def test_amp_modes() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("none", cpu) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(NetbuilderError, match="fp16 needs a CUDA device"):
        autocast_dtype("fp16", cpu)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None,
    reason="the optional tensorboard extra is not installed",
)
@pytest.mark.slow
def test_tensorboard_events_are_written(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = read_spec(write_spec(tmp_path / "s.yaml", tiny_spec(train={"epochs": 2})))
    run_training(spec, tmp_path / "run", progress=False)
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    accuracy = events.Scalars("accuracy/test")
    assert [e.step for e in accuracy] == [1, 2]
    assert {"loss/train", "loss/test", "accuracy/train", "lr"} <= set(events.Tags()["scalars"])


def test_cli_device_choices_come_from_the_config() -> None:
    out = subprocess.run(
        [sys.executable, "cli.py", "train", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    assert "{auto,cpu,cuda,mps}" in out
