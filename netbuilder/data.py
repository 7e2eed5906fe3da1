"""In-memory datasets and whole-batch transforms for training small CNNs fast.

Per-sample PIL transforms in a DataLoader spend most of their time in Python; MNIST-sized data
fits in memory (47 MB as uint8), so we keep it as one tensor on the training device and
transform whole batches there. Shuffling and augmentation are seeded from (seed, epoch, batch),
so any epoch, or any batch of it, can be replayed exactly after an interruption.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from netbuilder.errors import NetbuilderError

DATA_ENV = "NETBUILDER_DATA"
SHARED_DATA_DIR = Path("..") / "shared" / "data"  # the dev checkout's sibling folder
DEFAULT_DATA_DIR = Path("data")
DEFAULT_SYNTHETIC_SIZES = {True: 512, False: 256}  # train, test: enough for a tiny net to learn

_IDX_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset before seeing it."""

    name: str
    folder: str | None  # torchvision class name and folder under root; None when generated
    num_classes: int = 10
    channels: int = 1
    size: int = 28  # images are size x size
    mean: float = 0.5  # training-set pixel mean in [0, 1], for normalize()
    std: float = 0.5

    def expected_files(self) -> list[str]:
        """Paths relative to root that torchvision needs (it checks all four, both splits)."""
        if self.folder is None:
            return []
        names = [*_IDX_FILES[True], *_IDX_FILES[False]]
        return [f"{self.folder}/raw/{name}" for name in names]


DATASETS: Mapping[str, DatasetInfo] = MappingProxyType(  # read-only: not a registry
    {
        info.name: info
        for info in (
            DatasetInfo("mnist", "MNIST", mean=0.1307, std=0.3081),
            DatasetInfo("fashion_mnist", "FashionMNIST", mean=0.2860, std=0.3530),
            DatasetInfo("kmnist", "KMNIST", mean=0.1918, std=0.3483),
            DatasetInfo("synthetic", None, mean=0.114, std=0.155),
        )
    }
)


@dataclass
class ImageDataset:
    """Images as one uint8 tensor (N, C, H, W) and labels as int64 (N,), like a TensorDataset."""

    images: Tensor
    labels: Tensor
    info: DatasetInfo

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    @property
    def tensors(self) -> tuple[Tensor, Tensor]:
        """Same attribute as torch.utils.data.TensorDataset, for code written against it."""
        return self.images, self.labels

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def channels(self) -> int:
        return self.info.channels

    @property
    def size(self) -> int:
        return self.info.size


def dataset_names() -> list[str]:
    """Known dataset names, for the CLI's choices and error messages."""
    return sorted(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """Metadata for `name`; an unknown name is an error listing the known ones."""
    if name in DATASETS:
        return DATASETS[name]
    close = difflib.get_close_matches(name, dataset_names(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    known = ", ".join(dataset_names())
    raise NetbuilderError(f"unknown dataset {name!r}; known datasets: {known}{hint}")


def resolve_data_dir(cli_value: str | None) -> Path:
    """Pick the data root: --data-dir, else $NETBUILDER_DATA, else ../shared/data, else ./data."""
    if cli_value:
        return Path(cli_value).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    if SHARED_DATA_DIR.is_dir():
        return SHARED_DATA_DIR
    return DEFAULT_DATA_DIR


def load_dataset(
    name: str,
    root: str | Path,
    train: bool,
    *,
    download: bool = False,
    num_samples: int | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Load a whole split into memory.

    `num_samples` sets the synthetic dataset's size and keeps only the first `num_samples` of a
    real one (quick smoke runs); `seed` only affects the synthetic samples.
    """
    info = dataset_info(name)
    if num_samples is not None and num_samples < 1:
        raise NetbuilderError(f"num_samples must be at least 1, got {num_samples}")
    if info.folder is None:
        count = num_samples or DEFAULT_SYNTHETIC_SIZES[train]
        return make_synthetic(count, seed=seed, train=train)
    images, labels = _load_torchvision(info, Path(root), train, download)
    if num_samples is not None:
        images, labels = images[:num_samples], labels[:num_samples]
    return ImageDataset(images.unsqueeze(1).contiguous(), labels.long(), info)


def _load_torchvision(
    info: DatasetInfo, root: Path, train: bool, download: bool
) -> tuple[Tensor, Tensor]:
    """Read the IDX files through torchvision; fetch them only when asked to."""
    from torchvision import datasets  # deferred: importing torchvision costs about a second

    missing = [f for f in info.expected_files() if not (root / f).is_file()]
    if missing and not download:
        raise NetbuilderError(
            f"dataset {info.name!r} not found in {root.resolve()}: expected {', '.join(missing)}; "
            f"pass --data-dir or set {DATA_ENV}"
        )
    dataset_class = {
        "MNIST": datasets.MNIST,
        "FashionMNIST": datasets.FashionMNIST,
        "KMNIST": datasets.KMNIST,
    }[info.folder]
    try:
        dataset = dataset_class(root=str(root), train=train, download=bool(missing))
    except (OSError, RuntimeError) as exc:
        raise NetbuilderError(f"could not download dataset {info.name!r} to {root}: {exc}") from exc
    return dataset.data, dataset.targets


def make_synthetic(num_samples: int, seed: int = 0, train: bool = True) -> ImageDataset:
    """Generate a learnable 10-class dataset without any files.

    Each class is a stripe texture (one of 5 directions x 2 widths) shown in a window at its own
    spot on a ring, so even a net with global pooling can tell classes apart. Stripe phase,
    position jitter, contrast and noise come from `seed`: different seeds give different samples
    of the same classes, and a tiny CNN reaches ~100% test accuracy in about 20 epochs (1 s).
    """
    info = DATASETS["synthetic"]
    generator = torch.Generator().manual_seed(_mix_seed(seed, int(train)))
    labels = torch.randperm(num_samples, generator=generator) % info.num_classes
    images = _draw_patterns(labels, info.size, generator)
    return ImageDataset((images * 255).round().to(torch.uint8).unsqueeze(1), labels, info)


def _draw_patterns(labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Float images in [0, 1], shape (N, size, size), one class pattern per label."""
    n = len(labels)
    coords = torch.arange(size, dtype=torch.float32)
    ys, xs = coords.view(1, -1, 1), coords.view(1, 1, -1)
    angle = (labels % 5).float().view(-1, 1, 1) * (math.pi / 5)  # stripe direction
    period = torch.where(labels < 5, 4.0, 7.0).view(-1, 1, 1)  # stripe width
    phase = torch.rand(n, 1, 1, generator=generator) * 2 * math.pi
    along = ys * torch.sin(angle) + xs * torch.cos(angle)
    stripes = 0.5 + 0.5 * torch.cos(along * (2 * math.pi) / period + phase)
    spot = labels.float() * (2 * math.pi / 10) + (torch.rand(2, n, generator=generator) - 0.5)
    center = (size - 1) / 2 + size * 0.25 * torch.stack([torch.sin(spot[0]), torch.cos(spot[1])])
    dist2 = (ys - center[0].view(-1, 1, 1)) ** 2 + (xs - center[1].view(-1, 1, 1)) ** 2
    window = torch.exp(-dist2 / (2 * (size * 0.2) ** 2))  # the pattern sits at a class spot
    contrast = 0.6 + 0.4 * torch.rand(n, 1, 1, generator=generator)
    noise = 0.1 * torch.randn(n, size, size, generator=generator)
    return (contrast * stripes * window + noise).clamp(0, 1)


def _mix_seed(*parts: int) -> int:
    """Combine integers into one 63-bit seed (SplitMix64 steps), so nearby inputs decorrelate."""
    state = 0x9E3779B97F4A7C15
    mask = (1 << 64) - 1
    for part in parts:
        state = (state ^ (part & mask)) * 0xBF58476D1CE4E5B9 & mask
        state = (state ^ (state >> 31)) * 0x94D049BB133111EB & mask
        state ^= state >> 29
    return state >> 1


# ---------------------------------------------------------------- batch transforms


def to_float(batch: Tensor) -> Tensor:
    """uint8 images in [0, 255] to float32 in [0, 1]; float input passes through."""
    if batch.is_floating_point():
        return batch
    return batch.float().div_(255)


def resize(batch: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bilinear resize of a float batch to size x size (or (height, width)); a no-op when it
    already matches."""
    target = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(batch.shape[-2:]) == target:
        return batch
    return F.interpolate(batch, size=target, mode="bilinear", align_corners=False,
                         antialias=False)


def normalize(batch: Tensor, mean: float | Sequence[float], std: float | Sequence[float]) -> Tensor:
    """(batch - mean) / std, with one value for all channels or one per channel."""
    mean_t = torch.as_tensor(mean, dtype=batch.dtype, device=batch.device).reshape(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=batch.dtype, device=batch.device).reshape(1, -1, 1, 1)
    return (batch - mean_t) / std_t


def random_affine(
    batch: Tensor,
    generator: torch.Generator | None = None,
    rotation: float = 0.0,
    translate: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
) -> Tensor:
    """Rotate, shift and scale every image by its own random amount, in one grid_sample call.

    rotation: max degrees either way; translate: max shift as a fraction of the image size;
    scale: (low, high) zoom factors. Areas shifted in are zero, so augment before normalize().
    """
    n = batch.shape[0]
    draws = torch.rand(4, n, generator=generator, device=_generator_device(generator))
    draws = draws.to(device=batch.device, dtype=batch.dtype)
    angle = torch.deg2rad((2 * draws[0] - 1) * rotation)
    zoom = scale[0] + (scale[1] - scale[0]) * draws[1]
    shift = (2 * draws[2:] - 1) * translate * 2  # normalized coordinates span 2 per image
    theta = _inverse_affine(angle, zoom, shift)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _inverse_affine(angle: Tensor, zoom: Tensor, shift: Tensor) -> Tensor:
    """(N, 2, 3) matrices mapping output to input coordinates, as affine_grid expects."""
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    linear = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], 1)
    offset = -(linear @ shift.T.unsqueeze(-1))
    return torch.cat([linear, offset], dim=2)


def random_shift(batch: Tensor, pixels: int, generator: torch.Generator | None = None) -> Tensor:
    """Shift each image by whole pixels in [-pixels, pixels], zero-filled; cheaper than affine."""
    if pixels <= 0:
        return batch
    n, c, h, w = batch.shape
    padded = F.pad(batch, (pixels, pixels, pixels, pixels))
    offsets = torch.randint(
        0, 2 * pixels + 1, (2, n), generator=generator, device=_generator_device(generator)
    ).to(batch.device)
    rows = (offsets[0].view(n, 1) + torch.arange(h, device=batch.device)).view(n, 1, h, 1)
    cols = (offsets[1].view(n, 1) + torch.arange(w, device=batch.device)).view(n, 1, 1, w)
    padded = padded.gather(2, rows.expand(n, c, h, padded.shape[3]))
    return padded.gather(3, cols.expand(n, c, h, w))


def _generator_device(generator: torch.Generator | None) -> torch.device:
    """Random numbers must be drawn on the generator's own device."""
    return generator.device if generator is not None else torch.device("cpu")


@dataclass(frozen=True)
class BatchTransform:
    """uint8 batch -> float batch: scale to [0, 1], resize, augment (training only), normalize."""

    size: int | tuple[int, int] | None = None  # None keeps the stored size
    channels: int | None = None  # repeat grey images to this many channels (RGB specs)
    mean: float | tuple[float, ...] = 0.0  # defaults leave values in [0, 1]
    std: float | tuple[float, ...] = 1.0
    rotation: float = 0.0  # max degrees either way
    translate: float = 0.0  # max shift, fraction of image size
    scale: tuple[float, float] = (1.0, 1.0)  # zoom range

    def __post_init__(self) -> None:
        sizes = (self.size,) if isinstance(self.size, int) else self.size or ()
        _check(all(s >= 1 for s in sizes), "size must be at least 1", self.size)
        stds = self.std if isinstance(self.std, tuple) else (self.std,)
        _check(all(s > 0 for s in stds), "std must be positive", self.std)
        _check(self.rotation >= 0, "rotation must be >= 0 degrees", self.rotation)
        _check(0 <= self.translate < 1, "translate must be in [0, 1)", self.translate)
        low, high = self.scale
        _check(0 < low <= high, "scale must be (low, high) with 0 < low <= high", self.scale)

    @classmethod
    def for_dataset(cls, info: DatasetInfo, **overrides: Any) -> BatchTransform:
        """A transform normalizing with the dataset's own statistics."""
        return cls(**{"mean": info.mean, "std": info.std, **overrides})

    @property
    def augments(self) -> bool:
        return self.rotation > 0 or self.translate > 0 or self.scale != (1.0, 1.0)

    def __call__(
        self, batch: Tensor, train: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        x = to_float(batch)
        if self.size is not None:
            x = resize(x, self.size)
        if train and self.augments:
            x = random_affine(x, generator, self.rotation, self.translate, self.scale)
        if self.channels and x.shape[1] == 1 and self.channels > 1:
            x = x.expand(-1, self.channels, -1, -1)
        return normalize(x, self.mean, self.std)


def _check(ok: bool, message: str, value: object) -> None:
    """Validate a parameter up front, echoing the value received."""
    if not ok:
        raise NetbuilderError(f"{message}, got {value!r}")


# ---------------------------------------------------------------- loader


class BatchLoader:
    """Batches from an in-memory dataset kept on one device, in a per-epoch reproducible order.

    Epoch k's order and augmentation depend only on (seed, k), and batch b's augmentation only on
    (seed, k, b), so a run resumed at any batch replays exactly what an uninterrupted run saw.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int,
        *,
        transform: BatchTransform | None = None,
        train: bool = True,
        shuffle: bool | None = None,
        drop_last: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        _check(batch_size >= 1, "batch_size must be at least 1", batch_size)
        _check(dataset.images.dtype == torch.uint8, "images must be uint8", dataset.images.dtype)
        self.device = torch.device(device)
        self.images = dataset.images.to(self.device)
        self.labels = dataset.labels.to(self.device)
        self.info = dataset.info
        self.batch_size = batch_size
        self.transform = transform or BatchTransform()
        self.train = train
        self.shuffle = train if shuffle is None else shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.labels) // self.batch_size
        return math.ceil(len(self.labels) / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch the next plain iteration yields, like DistributedSampler."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.batches(self.epoch)

    def order(self, epoch: int) -> Tensor:
        """Sample indices for `epoch`, on the data's device."""
        n = len(self.labels)
        if not self.shuffle:
            return torch.arange(n, device=self.device)
        generator = torch.Generator().manual_seed(_mix_seed(self.seed, epoch))
        return torch.randperm(n, generator=generator).to(self.device)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (x, y) for `epoch` from batch number `start` on: x transformed floats."""
        order = self.order(epoch)
        for index in range(start, len(self)):
            chosen = order[index * self.batch_size : (index + 1) * self.batch_size]
            generator = torch.Generator().manual_seed(_mix_seed(self.seed, epoch, index, 1))
            x = self.transform(self.images[chosen], self.train, generator)
            yield x, self.labels[chosen]
