"""In-memory datasets and the batch loader that feeds the trainer.

Per-sample PIL transforms in a DataLoader spend most of their time in Python; MNIST-sized data
fits in memory (47 MB as uint8), so we keep it as one tensor on the training device and
transform whole batches there. Shuffling and augmentation are seeded from (seed, epoch, batch),
so any epoch, or any batch of it, can be replayed exactly after an interruption.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .transforms import BatchTransform, _check


@dataclass
class ImageDataset:
    """Images as one uint8 tensor (N, C, H, W), labels as int64 (N,), and the class names."""

    images: Tensor
    labels: Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def statistics(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the pixels scaled to [0, 1] (the normalisation default);
        computed in chunks, so a large dataset never needs a float copy of itself."""
        total = torch.zeros(self.channels, dtype=torch.float64)
        squares = torch.zeros(self.channels, dtype=torch.float64)
        for start in range(0, len(self), 4096):
            chunk = self.images[start : start + 4096].to(torch.float64).div_(255)
            total += chunk.sum(dim=(0, 2, 3))
            squares += chunk.square().sum(dim=(0, 2, 3))
        count = len(self) * self.images.shape[2] * self.images.shape[3]
        mean = total / count
        std = (squares / count - mean.square()).clamp(min=1e-12).sqrt()
        return [round(float(m), 4) for m in mean], [round(float(s), 4) for s in std]


def mix_seed(*parts: int) -> int:
    """Combine integers into one 63-bit seed (SplitMix64 steps), so nearby inputs decorrelate."""
    state = 0x9E3779B97F4A7C15
    mask = (1 << 64) - 1
    for part in parts:
        state = (state ^ (part & mask)) * 0xBF58476D1CE4E5B9 & mask
        state = (state ^ (state >> 31)) * 0x94D049BB133111EB & mask
        state ^= state >> 29
    return state >> 1


class BatchLoader:
    """Batches from an in-memory dataset kept on one device, in a per-epoch reproducible order.

    Epoch k's order and augmentation depend only on (seed, k), and batch b's augmentation only on
    (seed, k, b), so a run resumed at any batch replays exactly what an uninterrupted run saw.
    In training, a last batch of a single image is left out: BatchNorm after a global pooling
    (a 1x1 map) cannot normalise one value per channel, and dropping it loses one image.

    With `part=(rank, world)`, `batch_size` is the global batch and this loader yields rank's
    equal share of each one (same order, same augmentation as one process would apply); a last
    training batch too small to give every rank an image is left out, so all ranks take the
    same number of steps.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int,
        *,
        transform: BatchTransform | None = None,
        train: bool = True,
        shuffle: bool | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        part: tuple[int, int] = (0, 1),
    ) -> None:
        _check(batch_size >= 1, "batch_size must be at least 1", batch_size)
        _check(dataset.images.dtype == torch.uint8, "images must be uint8", dataset.images.dtype)
        self.device = torch.device(device)
        self.images = dataset.images.to(self.device)
        self.labels = dataset.labels.to(self.device)
        self.batch_size = batch_size
        self.transform = transform or BatchTransform()
        self.train = train
        self.shuffle = train if shuffle is None else shuffle
        self.seed = seed
        self.rank, self.world = part

    def __len__(self) -> int:
        count = len(self.labels)
        smallest = max(2, self.world)  # a lone image (BatchNorm) or an empty rank
        if self.train and count > self.batch_size and 0 < count % self.batch_size < smallest:
            count -= count % self.batch_size
        return math.ceil(count / self.batch_size)

    def order(self, epoch: int) -> Tensor:
        """Sample indices for `epoch`, on the data's device."""
        n = len(self.labels)
        if not self.shuffle:
            return torch.arange(n, device=self.device)
        generator = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        return torch.randperm(n, generator=generator).to(self.device)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (x, y) for `epoch` from batch number `start` on: x transformed floats."""
        order = self.order(epoch)
        for index in range(start, len(self)):
            chosen = order[index * self.batch_size : (index + 1) * self.batch_size]
            share = _share(len(chosen), self.world, self.rank)
            generator = torch.Generator().manual_seed(mix_seed(self.seed, epoch, index, 1))
            x = self.transform(
                self.images[chosen[share]], self.train, generator, (share.start, len(chosen))
            )
            yield x, self.labels[chosen[share]]


def _share(count: int, world: int, rank: int) -> slice:
    """Rank `rank`'s equal part of `count` items; the remainder goes to the first ranks."""
    base, extra = divmod(count, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))
