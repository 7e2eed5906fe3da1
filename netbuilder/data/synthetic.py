"""A learnable 10-class dataset made on the fly: tests and smoke runs need no files."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..spec.datasets import DATASETS
from .loader import ImageDataset, mix_seed

DEFAULT_SIZES = {True: 512, False: 256}  # train, test: enough for a tiny net to learn


def make_synthetic(num_samples: int, seed: int = 0, train: bool = True) -> ImageDataset:
    """Each class is a stripe texture (one of 5 directions x 2 widths) shown in a window at its
    own spot on a ring, so even a net with global pooling can tell classes apart. Stripe phase,
    position jitter, contrast and noise come from `seed`: different seeds give different samples
    of the same classes, and a tiny CNN reaches ~100% test accuracy in about 20 epochs (1 s).
    """
    info = DATASETS["synthetic"]
    generator = torch.Generator().manual_seed(mix_seed(seed, int(train)))
    labels = torch.randperm(num_samples, generator=generator) % info.num_classes
    images = _draw_patterns(labels, info.size, generator)
    return ImageDataset(
        (images * 255).round().to(torch.uint8).unsqueeze(1), labels, info.class_names()
    )


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
