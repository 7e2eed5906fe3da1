"""Whole-batch transforms: uint8 images to normalised float batches, with random affine
augmentation drawn per image from a seeded generator (so any batch can be replayed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import NetbuilderError


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
    return F.interpolate(batch, size=target, mode="bilinear", align_corners=False, antialias=False)


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
    part: tuple[int, int] | None = None,
) -> Tensor:
    """Rotate, shift and scale every image by its own random amount, in one grid_sample call.

    rotation: max degrees either way; translate: max shift as a fraction of the image size;
    scale: (low, high) zoom factors. Areas shifted in are zero, so augment before normalize().
    `part` = (start, total): the batch is images start.. of a larger batch of `total` (one
    rank's share): the draws for the whole batch are made and this part's are used, so the
    images change exactly as they would in one process.
    """
    n = batch.shape[0]
    start, total = part or (0, n)
    device = generator.device if generator is not None else torch.device("cpu")
    draws = torch.rand(4, total, generator=generator, device=device)[:, start : start + n]
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

    @property
    def augments(self) -> bool:
        return self.rotation > 0 or self.translate > 0 or self.scale != (1.0, 1.0)

    def __call__(
        self,
        batch: Tensor,
        train: bool = False,
        generator: torch.Generator | None = None,
        part: tuple[int, int] | None = None,
    ) -> Tensor:
        x = to_float(batch)
        if self.size is not None:
            x = resize(x, self.size)
        if train and self.augments:
            x = random_affine(x, generator, self.rotation, self.translate, self.scale, part)
        if self.channels and x.shape[1] == 1 and self.channels > 1:
            x = x.expand(-1, self.channels, -1, -1)
        return normalize(x, self.mean, self.std)


def _check(ok: bool, message: str, value: object) -> None:
    """Validate a parameter up front, echoing the value received."""
    if not ok:
        raise NetbuilderError(f"{message}, got {value!r}")
