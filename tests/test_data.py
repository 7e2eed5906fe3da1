"""Tests for netbuilder.data: IDX loading and its checks, synthetic data, batch transforms,
BatchLoader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from conftest import make_fake_split, write_fake_dataset, write_idx
from netbuilder.data.loader import BatchLoader, ImageDataset
from netbuilder.data.sources import load_dataset, resolve_data_dir
from netbuilder.data.synthetic import make_synthetic
from netbuilder.data.transforms import BatchTransform, normalize, random_affine, resize
from netbuilder.errors import NetbuilderError
from netbuilder.spec.datasets import dataset_info

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
REAL_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST"}


@pytest.fixture
def fake_root(tmp_path: Path) -> tuple[Path, dict[bool, ImageDataset]]:
    """A data root holding a fake MNIST."""
    return tmp_path, write_fake_dataset(tmp_path, "MNIST")


def id_dataset(count: int) -> ImageDataset:
    """Images whose every pixel and label equal the sample's index, to trace where samples go."""
    ids = torch.arange(count)
    images = ids.to(torch.uint8).view(-1, 1, 1, 1).expand(count, 1, 4, 4).contiguous()
    return ImageDataset(images, ids, [str(i) for i in range(count)])


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("name", sorted(REAL_FOLDERS))
@pytest.mark.parametrize("train", [True, False])
def test_load_dataset_reads_idx_files(tmp_path: Path, name: str, train: bool) -> None:
    splits = write_fake_dataset(tmp_path, REAL_FOLDERS[name])
    dataset = load_dataset(name, tmp_path, train=train)
    expected = splits[train]
    assert dataset.images.shape == (len(expected), 1, 28, 28)
    assert dataset.images.dtype == torch.uint8
    assert dataset.labels.dtype == torch.int64
    assert torch.equal(dataset.images, expected.images)
    assert torch.equal(dataset.labels, expected.labels)
    assert (dataset.num_classes, dataset.channels) == (10, 1)
    assert dataset.classes == dataset_info(name).class_names()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("magic", r"not an IDX file of uint8 with 3 dimensions \(magic number 00000903\)"),
        ("truncated", r"holds 3,900 data bytes but its header declares 5x28x28 = 3,920"),
        ("count", r"holds 5 images but .*labels-idx1-ubyte holds 4 labels"),
        ("label", r"has label 12; the dataset has 10 classes"),
        ("empty", r"not an IDX file .*\(magic number missing\)"),
    ],
)
def test_damaged_idx_files_are_one_line_naming_the_file(
    fake_root: tuple[Path, dict[bool, ImageDataset]],
    damage: str,
    message: str,
) -> None:
    root, splits = fake_root
    raw = root / "MNIST" / "raw"
    images, labels = raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte"
    if damage == "magic":
        images.write_bytes(b"\0\0\x09\x03" + images.read_bytes()[4:])
    elif damage == "truncated":
        images.write_bytes(images.read_bytes()[:-20])
    elif damage == "count":
        write_idx(labels, splits[True].labels[:4].to(torch.uint8))
    elif damage == "label":
        write_idx(labels, torch.tensor([1, 2, 12, 3, 4], dtype=torch.uint8))
    else:
        images.write_bytes(b"")
    with pytest.raises(NetbuilderError, match=message) as caught:
        load_dataset("mnist", root, train=True)
    assert "\n" not in str(caught.value) and "MNIST/raw/train-" in str(caught.value)


def test_missing_files_error_names_dataset_dir_and_files(tmp_path: Path) -> None:
    with pytest.raises(NetbuilderError) as caught:
        load_dataset("fashion_mnist", tmp_path, train=True)
    message = str(caught.value)
    assert "'fashion_mnist'" in message
    assert str(tmp_path.resolve()) in message
    assert "FashionMNIST/raw/train-images-idx3-ubyte" in message
    assert "FashionMNIST/raw/t10k-labels-idx1-ubyte" in message
    assert "--data-dir" in message and "NETBUILDER_DATA" in message
    assert "\n" not in message


def test_partly_missing_files_error_names_only_the_missing(tmp_path: Path) -> None:
    make_fake_split(tmp_path / "MNIST" / "raw", "train", 2, 0)
    with pytest.raises(NetbuilderError, match="t10k-images-idx3-ubyte") as caught:
        load_dataset("mnist", tmp_path, train=True)
    assert "train-images" not in str(caught.value)


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(NetbuilderError) as caught:
        load_dataset("mnsit", ".", train=True)
    message = str(caught.value)
    assert "'mnsit'" in message
    for name in ("mnist", "fashion_mnist", "kmnist", "synthetic"):
        assert name in message
    assert "did you mean 'mnist'" in message


def test_dataset_metadata() -> None:
    for name in ("mnist", "fashion_mnist", "kmnist", "synthetic"):
        info = dataset_info(name)
        assert (info.num_classes, info.channels, info.size) == (10, 1, 28)


def test_resolve_data_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "repo"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("NETBUILDER_DATA", raising=False)
    assert resolve_data_dir(None) == Path("data")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert resolve_data_dir(None) == Path("../shared/data")
    monkeypatch.setenv("NETBUILDER_DATA", "/env/data")
    assert resolve_data_dir(None) == Path("/env/data")
    assert resolve_data_dir("/cli/data") == Path("/cli/data")


# ---------------------------------------------------------------- synthetic


def test_synthetic_default_sizes_and_types() -> None:
    train = load_dataset("synthetic", "unused", train=True)
    test = load_dataset("synthetic", "unused", train=False)
    assert train.images.shape == (512, 1, 28, 28) and len(test) == 256
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    counts = train.labels.bincount()
    assert len(counts) == 10 and counts.max() - counts.min() <= 1


def test_synthetic_is_deterministic_per_seed() -> None:
    first, again = make_synthetic(64, seed=3), make_synthetic(64, seed=3)
    other = make_synthetic(64, seed=4)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, other.images)
    assert not torch.equal(first.images, make_synthetic(64, seed=3, train=False).images)


def test_synthetic_classes_differ() -> None:
    """Class means must be far apart, or no net could learn the labels."""
    data = make_synthetic(1000, seed=0)
    means = torch.stack([data.images[data.labels == c].float().mean(0) for c in range(10)])
    distances = torch.cdist(means.flatten(1), means.flatten(1))
    assert distances[~torch.eye(10, dtype=torch.bool)].min() > 100


# ---------------------------------------------------------------- transforms


def test_resize_changes_shape_and_skips_when_equal() -> None:
    batch = torch.rand(3, 1, 28, 28)
    assert resize(batch, 32).shape == (3, 1, 32, 32)
    assert resize(batch, 28) is batch


def test_normalize_gives_zero_mean_unit_std() -> None:
    batch = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 3 + 2
    result = normalize(batch, batch.mean().item(), batch.std().item())
    assert result.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert result.std().item() == pytest.approx(1.0, abs=1e-5)


def test_normalize_per_channel() -> None:
    batch = torch.ones(2, 3, 4, 4)
    result = normalize(batch, (0.0, 1.0, 0.5), (1.0, 1.0, 0.25))
    assert result[:, :, 0, 0].tolist() == [[1.0, 0.0, 2.0]] * 2


def test_random_affine_identity_params_leave_batch_unchanged() -> None:
    batch = torch.rand(8, 1, 28, 28)
    result = random_affine(batch, torch.Generator().manual_seed(0), 0.0, 0.0, (1.0, 1.0))
    assert torch.allclose(result, batch, atol=1e-5)


def test_random_affine_changes_batch_reproducibly() -> None:
    batch = make_synthetic(8, seed=0).images.float() / 255
    params = {"rotation": 15.0, "translate": 0.1, "scale": (0.9, 1.1)}
    first = random_affine(batch, torch.Generator().manual_seed(7), **params)
    again = random_affine(batch, torch.Generator().manual_seed(7), **params)
    other = random_affine(batch, torch.Generator().manual_seed(8), **params)
    assert first.shape == batch.shape
    assert (first - batch).abs().max() > 0.1
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    per_sample = (first - batch).abs().flatten(1).sum(1)
    assert per_sample.unique().numel() == len(batch), "each sample needs its own parameters"


def test_random_affine_translate_moves_a_dot_within_bounds() -> None:
    batch = torch.zeros(32, 1, 28, 28)
    batch[:, :, 14, 14] = 1.0
    moved = random_affine(batch, torch.Generator().manual_seed(0), translate=0.1)
    rows = (moved.sum(3).squeeze(1) * torch.arange(28)).sum(1) / moved.sum((1, 2, 3))
    cols = (moved.sum(2).squeeze(1) * torch.arange(28)).sum(1) / moved.sum((1, 2, 3))
    assert (rows - 14).abs().max() <= 2.8 + 1e-4 and (cols - 14).abs().max() <= 2.8 + 1e-4
    assert (rows - 14).abs().max() > 1.0


def test_batch_transform_pipeline() -> None:
    transform = BatchTransform(size=32, mean=0.5, std=0.5, rotation=10.0)
    batch = torch.full((4, 1, 28, 28), 255, dtype=torch.uint8)
    evaluated = transform(batch, train=False)
    assert evaluated.dtype == torch.float32 and evaluated.shape == (4, 1, 32, 32)
    assert torch.allclose(evaluated, torch.ones_like(evaluated))
    augmented = transform(batch, train=True, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(augmented, evaluated)


@pytest.mark.parametrize(
    ("field", "value"),
    [("size", 0), ("std", 0.0), ("rotation", -1.0), ("translate", 1.5), ("scale", (1.2, 0.8))],
)
def test_batch_transform_rejects_bad_config(field: str, value: object) -> None:
    with pytest.raises(NetbuilderError, match=f"{field} .*got {re.escape(repr(value))}"):
        BatchTransform(**{field: value})


# ---------------------------------------------------------------- loader


@pytest.mark.parametrize(
    ("count", "batch_size", "train", "batches"),
    [
        (10, 3, False, 4),
        (10, 3, True, 3),
        (9, 3, True, 3),
        (11, 3, True, 4),
        (7, 3, True, 2),
        (1, 5, True, 1),
    ],
)
def test_loader_batch_count_leaves_out_a_lone_last_training_image(
    count: int, batch_size: int, train: bool, batches: int
) -> None:
    """A last batch of one image would break BatchNorm on a 1x1 map; it is dropped in
    training only, and only when other images remain."""
    loader = BatchLoader(id_dataset(count), batch_size, train=train)
    assert len(loader) == batches
    assert len(list(loader.batches(0))) == batches
    seen = sum(len(y) for _, y in loader.batches(0))
    assert seen == (count - 1 if train and count > 1 and count % batch_size == 1 else count)


def test_loader_sees_every_sample_once_per_epoch() -> None:
    loader = BatchLoader(id_dataset(23), 5, seed=1)
    for epoch in range(3):
        batches = list(loader.batches(epoch))
        labels = torch.cat([y for _, y in batches])
        assert sorted(labels.tolist()) == list(range(23))
        pixels = torch.cat([x[:, 0, 0, 0] for x, _ in batches])
        assert torch.allclose(pixels * 255, labels.float())  # images travel with their labels


def test_loader_order_depends_only_on_seed_and_epoch() -> None:
    def epoch_labels(loader: BatchLoader, epoch: int) -> list[int]:
        return torch.cat([y for _, y in loader.batches(epoch)]).tolist()

    warmed = BatchLoader(id_dataset(50), 8, seed=5)
    for epoch in range(3):
        epoch_labels(warmed, epoch)
    fresh = BatchLoader(id_dataset(50), 8, seed=5)
    assert epoch_labels(warmed, 3) == epoch_labels(fresh, 3)
    assert epoch_labels(fresh, 3) != epoch_labels(fresh, 4)
    assert epoch_labels(fresh, 3) != epoch_labels(BatchLoader(id_dataset(50), 8, seed=6), 3)


def test_loader_without_shuffle_keeps_order() -> None:
    loader = BatchLoader(id_dataset(7), 3, train=False)
    assert torch.cat([y for _, y in loader.batches(0)]).tolist() == list(range(7))


def test_loader_resumes_mid_epoch_exactly() -> None:
    transform = BatchTransform(rotation=20.0, translate=0.1)
    dataset = make_synthetic(40, seed=0)
    full = list(BatchLoader(dataset, 8, transform=transform, seed=2).batches(epoch=1))
    resumed = list(BatchLoader(dataset, 8, transform=transform, seed=2).batches(epoch=1, start=3))
    assert len(resumed) == 2
    for (x_full, y_full), (x_resumed, y_resumed) in zip(full[3:], resumed, strict=True):
        assert torch.equal(x_full, x_resumed) and torch.equal(y_full, y_resumed)


def test_loader_applies_transform_and_augments_only_in_training() -> None:
    dataset = make_synthetic(16, seed=0)
    transform = BatchTransform(size=32, mean=0.5, std=0.5, rotation=30.0)
    x_train, _ = next(BatchLoader(dataset, 16, transform=transform, shuffle=False).batches(0))
    x_eval, _ = next(BatchLoader(dataset, 16, transform=transform, train=False).batches(0))
    assert x_eval.shape == (16, 1, 32, 32) and x_eval.dtype == torch.float32
    assert torch.allclose(x_eval, transform(dataset.images, train=False))
    assert not torch.allclose(x_train, x_eval)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_loader_on_cuda_matches_cpu() -> None:
    dataset = make_synthetic(64, seed=0)
    transform = BatchTransform(mean=0.1, std=0.2, rotation=10.0, translate=0.1)
    cpu = list(BatchLoader(dataset, 16, transform=transform, seed=3).batches(0))
    gpu = list(BatchLoader(dataset, 16, transform=transform, seed=3, device="cuda").batches(0))
    for (x_cpu, y_cpu), (x_gpu, y_gpu) in zip(cpu, gpu, strict=True):
        assert x_gpu.device.type == "cuda" and y_gpu.device.type == "cuda"
        assert torch.equal(y_cpu, y_gpu.cpu())
        assert torch.allclose(x_cpu, x_gpu.cpu(), atol=1e-4)


# ---------------------------------------------------------------- real data


@pytest.mark.integration
@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="no ../shared/data")
def test_real_mnist_sizes() -> None:
    train = load_dataset("mnist", SHARED_DATA, train=True)
    test = load_dataset("mnist", SHARED_DATA, train=False)
    assert train.images.shape == (60000, 1, 28, 28) and len(test) == 10000
    assert train.labels.bincount().tolist()[:2] == [5923, 6742]
    assert torch.equal(torch.unique(test.labels), torch.arange(10))
