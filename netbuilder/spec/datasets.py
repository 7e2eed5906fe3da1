"""The datasets a spec's `train.dataset` may name, as plain data (no torch): what a model needs
to know about one before seeing it. Where the files lie and how they are read is `data/`'s."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import NetbuilderError, excerpt


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's shape, classes and catalogued statistics."""

    name: str
    folder: str | None  # torchvision's folder name under the data root; None when not IDX files
    num_classes: int = 10
    channels: int = 1
    size: int = 28  # images are size x size
    mean: float = 0.5  # training-set pixel mean in [0, 1], the default normalisation
    std: float = 0.5
    classes: tuple[str, ...] = ()  # class names; empty: the class indices

    def known_statistics(self) -> tuple[list[float], list[float]] | None:
        """Per-channel (mean, std) for normalisation; None where the images decide (size 0)."""
        return ([self.mean], [self.std]) if self.size else None

    def class_names(self) -> list[str]:
        return list(self.classes) or [str(index) for index in range(self.num_classes)]


FASHION = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
KMNIST = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
DATASETS: Mapping[str, DatasetInfo] = MappingProxyType(
    {  # read-only: not a registry
        info.name: info
        for info in (
            DatasetInfo("mnist", "MNIST", mean=0.1307, std=0.3081),
            DatasetInfo("fashion_mnist", "FashionMNIST", mean=0.2860, std=0.3530, classes=FASHION),
            DatasetInfo("kmnist", "KMNIST", mean=0.1918, std=0.3483, classes=KMNIST),
            DatasetInfo("synthetic", None, mean=0.114, std=0.155),
            DatasetInfo("imagefolder", None, num_classes=0, channels=0, size=0),
        )
    }
)
DATASET_NAMES = tuple(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """Metadata for `name`; an unknown name is an error listing the known ones."""
    if name in DATASETS:
        return DATASETS[name]
    close = difflib.get_close_matches(name, DATASET_NAMES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise NetbuilderError(
        f"unknown dataset {excerpt(name)}; known datasets: {', '.join(sorted(DATASET_NAMES))}{hint}"
    )
