"""Tests for netbuilder.evaluate and the eval/predict commands, on a synthetic checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torchvision.io import write_png

from conftest import tiny_spec
from netbuilder import read_spec
from netbuilder.data import make_synthetic
from netbuilder.errors import NetbuilderError
from netbuilder.evaluate import evaluate_checkpoint, predict, read_image_file
from netbuilder.records import read_metrics
from netbuilder.train import run_training

# torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they still work
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")

SPEC = tiny_spec(train={"epochs": 3})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("evaluate")
    spec_path = folder / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC, sort_keys=False), encoding="utf-8")
    run_training(read_spec(spec_path), folder / "run", device="cpu", progress=False)
    return folder / "run"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[int]]:
    """Synthetic test-style samples written as 28x28 grey PNGs, with their labels."""
    folder = tmp_path_factory.mktemp("images")
    samples = make_synthetic(4, seed=7, train=False)
    paths = []
    for index, image in enumerate(samples.images):
        paths.append(folder / f"sample{index}.png")
        write_png(image, str(paths[-1]))
    return paths, samples.labels.tolist()


def test_evaluate_matches_the_runs_best_epoch(run_dir: Path) -> None:
    result = evaluate_checkpoint(run_dir / "best.pt", device="cpu")
    rows = read_metrics(run_dir / "metrics.csv")
    assert result.accuracy == max(float(row["test_acc"]) for row in rows)
    assert result.num_samples == 256 and result.confusion.shape == (10, 10)
    assert len(result.per_class_accuracy) == 10
    correct = result.confusion.diag() / result.confusion.sum(dim=1)
    assert result.per_class_accuracy == pytest.approx(correct.tolist())
    assert result.spec_name == "tiny" and result.dataset == "synthetic"


def test_predict_returns_top_k_probabilities(run_dir: Path,
                                             images: tuple[list[Path], list[int]]) -> None:
    paths, labels = images
    predictions = predict(run_dir / "best.pt", paths, top_k=3)
    assert [p.image for p in predictions] == paths
    for prediction in predictions:
        probabilities = [score.probability for score in prediction.top]
        assert len(probabilities) == 3
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-6
    hits = sum(p.top[0].index == label for p, label in zip(predictions, labels, strict=True))
    assert hits >= 2  # the net is well above chance on this data


def test_rgb_images_are_read_as_grey_for_a_grey_spec(tmp_path: Path) -> None:
    rgb = torch.randint(0, 256, (3, 10, 12), dtype=torch.uint8)
    write_png(rgb, str(tmp_path / "rgb.png"))
    assert read_image_file(tmp_path / "rgb.png", 1).shape == (1, 10, 12)
    assert read_image_file(tmp_path / "rgb.png", 3).shape == (3, 10, 12)


def test_predict_errors(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NetbuilderError, match="image not found"):
        predict(run_dir / "best.pt", [tmp_path / "missing.png"])
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(NetbuilderError, match="cannot decode image"):
        predict(run_dir / "best.pt", [tmp_path / "bad.png"])
    with pytest.raises(NetbuilderError, match="top_k must be at least 1"):
        predict(run_dir / "best.pt", [tmp_path / "bad.png"], top_k=0)


def test_eval_command_prints_accuracy_and_confusion(run_dir: Path, run_cli) -> None:
    result = run_cli("eval", str(run_dir / "best.pt"), "--device", "cpu")
    assert result.code == 0, result.err
    assert "accuracy" in result.out and "confusion matrix" in result.out
    assert "/256)" in result.out


def test_predict_command(run_dir: Path, images: tuple[list[Path], list[int]], run_cli) -> None:
    paths, _ = images
    result = run_cli("predict", str(run_dir / "best.pt"), *map(str, paths), "--top-k", "2")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert len(lines) == len(paths)
    assert lines[0].startswith(f"{paths[0]}: ") and lines[0].count("%") == 2


def test_eval_of_a_corrupt_checkpoint_exits_2(tmp_path: Path, run_cli) -> None:
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 10)
    result = run_cli("eval", str(tmp_path / "bad.pt"), "--device", "cpu")
    assert result.code == 2
    assert "bad.pt" in result.err and len(result.err.strip().splitlines()) == 1
