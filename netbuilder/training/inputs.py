"""The batches a spec is trained and tested on: its dataset split in memory, checked against
the spec, with the normalisation resolved and the transforms the spec's input needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..data.images import read_image
from ..data.loader import BatchLoader, ImageDataset
from ..data.sources import load_dataset, resolve_data_dir
from ..data.transforms import BatchTransform
from ..errors import NetbuilderError
from ..spec.config import TrainConfig
from ..spec.datasets import dataset_info
from ..spec.types import Spec
from .distributed import Cluster


@dataclass(frozen=True)
class Loaders:
    train: BatchLoader
    test: BatchLoader
    classes: list[str]


def load_split(
    spec: Spec, config: TrainConfig, train: bool, data_dir: str | Path | None, progress: bool = True
) -> ImageDataset:
    """One split of the spec's dataset, checked to fit the spec."""
    dataset = load_dataset(
        config.dataset,
        resolve_data_dir(data_dir),
        train,
        seed=config.seed,
        image_shape=spec.input_shape,
        progress=progress,
    )
    check_dataset_fits(spec, config.dataset, dataset)
    return dataset


def check_dataset_fits(spec: Spec, name: str, dataset: ImageDataset) -> None:
    """The spec must predict the dataset's classes and read its channels."""
    if spec.num_classes != dataset.num_classes:
        raise NetbuilderError(
            f"spec '{spec.name}' has num_classes {spec.num_classes} but dataset "
            f"'{name}' has {dataset.num_classes} classes"
        )
    channels = spec.input_shape[0]
    if dataset.channels not in (1, channels):
        raise NetbuilderError(
            f"spec '{spec.name}' takes {channels} input channels but dataset "
            f"'{name}' has {dataset.channels}"
        )


def resolve_normalization(config: TrainConfig, train_set: ImageDataset) -> TrainConfig:
    """The config with mean/std filled in where the spec left them out: the dataset's known
    statistics, or (imagefolder) those of its training images. The run records the result."""
    normalize = config.transforms.normalize
    if normalize.mean is not None and normalize.std is not None:
        return config
    mean, std = dataset_info(config.dataset).known_statistics() or train_set.statistics()
    return config.with_normalization(normalize.mean or mean, normalize.std or std)


def make_transform(spec: Spec, config: TrainConfig) -> BatchTransform:
    """uint8 dataset batch -> what the spec's input layer expects: its size and channels."""
    normal, augment = config.transforms.normalize, config.transforms.augment
    if normal.mean is None or normal.std is None:
        raise ValueError("resolve_normalization first")
    return BatchTransform(
        size=spec.input_shape[1:],
        channels=spec.input_shape[0],
        mean=tuple(normal.mean),
        std=tuple(normal.std),
        rotation=augment.rotation,
        translate=augment.translate,
        scale=(augment.scale[0], augment.scale[1]),
    )


def image_batch(paths: Sequence[str | Path], spec: Spec, config: TrainConfig) -> Tensor:
    """Image files as the model's input, through the path its training images took: decoded
    at the spec's size for an imagefolder run (as its cache was), at their own size otherwise,
    then the batch transform (resize, channels, normalisation). One image at a time, so a list
    of large photos never holds more than one at full size."""
    channels, height, width = spec.input_shape
    decoded = (height, width) if config.dataset == "imagefolder" else None
    transform = make_transform(spec, config)
    return torch.cat(
        [transform(read_image(path, channels, decoded).unsqueeze(0)) for path in paths]
    )


def make_loader(
    spec: Spec,
    config: TrainConfig,
    dataset: ImageDataset,
    train: bool,
    device: torch.device,
    cluster: Cluster | None = None,
) -> BatchLoader:
    """Batches of the global batch size; with several ranks, this rank's share of each."""
    batch_size = config.batch_size if train else config.eval_batch_size
    part = (cluster.rank, cluster.world) if cluster is not None else (0, 1)
    return BatchLoader(
        dataset,
        batch_size,
        transform=make_transform(spec, config),
        train=train,
        seed=config.seed,
        device=device,
        part=part,
    )


def prepare_data(
    spec: Spec,
    config: TrainConfig,
    data_dir: str | Path | None,
    device: torch.device,
    progress: bool = True,
    cluster: Cluster | None = None,
) -> tuple[TrainConfig, Loaders]:
    """Both splits on `device`, and the config with its normalisation resolved."""
    train_set = load_split(spec, config, True, data_dir, progress)
    test_set = load_split(spec, config, False, data_dir, progress)
    config = resolve_normalization(config, train_set)
    return config, Loaders(
        make_loader(spec, config, train_set, True, device, cluster),
        make_loader(spec, config, test_set, False, device, cluster),
        train_set.classes,
    )
