"""Tests for netbuilder.inference and the eval/predict commands, on a synthetic checkpoint,
and for netbuilder.data.images, which reads the image files."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_spec, write_png, write_spec
from netbuilder import read_spec
from netbuilder.data.images import read_image
from netbuilder.data.synthetic import make_synthetic
from netbuilder.errors import NetbuilderError
from netbuilder.inference import evaluate_checkpoint, predict
from netbuilder.training.records import read_metrics
from netbuilder.training.run import run_training

SPEC = tiny_spec(train={"epochs": 3})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("evaluate")
    run_training(read_spec(write_spec(folder / "spec.yaml", SPEC)), folder / "run", progress=False)
    return folder / "run"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[int]]:
    """Synthetic test-style samples written as 28x28 grey PNGs, with their labels."""
    folder = tmp_path_factory.mktemp("images")
    samples = make_synthetic(4, seed=7, train=False)
    paths = []
    for index, image in enumerate(samples.images):
        paths.append(folder / f"sample{index}.png")
        write_png(image, paths[-1])
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


def test_predict_returns_top_k_probabilities(
    run_dir: Path, images: tuple[list[Path], list[int]]
) -> None:
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
    write_png(rgb, tmp_path / "rgb.png")
    assert read_image(tmp_path / "rgb.png", 1).shape == (1, 10, 12)
    assert read_image(tmp_path / "rgb.png", 3).shape == (3, 10, 12)
    assert read_image(tmp_path / "rgb.png", 1, size=(5, 6)).shape == (1, 5, 6)


def test_16_bit_png_is_scaled_by_its_real_range(tmp_path: Path) -> None:
    """65535 is white in a 16-bit image: dividing by 255 would turn most of it into noise."""
    wide = np.array([[0, 257 * 100, 65535, 32768]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert Image.open(tmp_path / "wide.png").mode.startswith("I")
    assert read_image(tmp_path / "wide.png", 1).flatten().tolist() == [0, 100, 255, 128]
    assert read_image(tmp_path / "wide.png", 3).shape == (3, 1, 4)


def test_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
    """A PNG header claiming 30000x30000 pixels (900 M: ~1 GB as grey) in a tiny file."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    (tmp_path / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(NetbuilderError, match=r"declares too many pixels .*; the limit is"):
        read_image(tmp_path / "bomb.png", 1)
    header = struct.pack(">IIBBBBB", 5000, 5000, 8, 0, 0, 0, 0)  # under PIL's bound, over ours
    (tmp_path / "big.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    )
    with pytest.raises(NetbuilderError, match="declares 5000x5000 pixels; the limit is"):
        read_image(tmp_path / "big.png", 1)


def test_a_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(NetbuilderError, match="is a directory; expected an image file"):
        read_image(tmp_path, 1)


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


MEMORY_PROBE = """
import resource, sys
from netbuilder.inference import predict
predict(sys.argv[1], sys.argv[2:], top_k=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@pytest.mark.slow
def test_predict_holds_one_large_image_at_a_time(run_dir: Path, tmp_path: Path) -> None:
    """Twelve 4096x4096 photos (each within the pixel limit): the peak grows by about one
    decoded image, not by twelve (16 MB each as grey, 48 MB as RGB)."""
    big = tmp_path / "big0.png"
    Image.new("RGB", (4096, 4096), (90, 140, 30)).save(big)
    paths = [big, *(tmp_path / f"big{i}.png" for i in range(1, 12))]
    for path in paths[1:]:
        path.write_bytes(big.read_bytes())

    def peak_mib(images: list[Path]) -> int:
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE, str(run_dir / "best.pt"), *map(str, images)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""  # nothing but the result, no warnings
        return int(done.stdout.split()[-1])

    assert peak_mib(paths) - peak_mib(paths[:1]) < 64


def test_a_palette_png_with_transparency_decodes_without_a_warning(tmp_path: Path) -> None:
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 255, 255, 255] * 128)
    alpha = b"\x00\x80" + b"\xff" * 254  # partial: PIL keeps it as bytes, and warns on convert
    palette.save(tmp_path / "palette.png", transparency=alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "palette.png", 1).shape == (1, 8, 8)
        assert read_image(tmp_path / "palette.png", 3).shape == (3, 8, 8)
