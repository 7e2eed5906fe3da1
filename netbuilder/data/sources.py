"""Which dataset, from where: one call that returns a split as an in-memory ImageDataset."""

from __future__ import annotations

from pathlib import Path

from ..errors import NetbuilderError
from .catalog import DATA_ENV, dataset_info
from .idx import read_split
from .loader import ImageDataset
from .synthetic import DEFAULT_SIZES, make_synthetic


def load_dataset(name: str, root: str | Path, train: bool, *, seed: int = 0,
                 image_shape: tuple[int, int, int] = (1, 28, 28),
                 progress: bool = True) -> ImageDataset:
    """One split of `name` in memory. `image_shape` (channels, height, width) is what an
    imagefolder's images are decoded to; `seed` only affects the synthetic samples."""
    info = dataset_info(name)
    root = Path(root)
    if name == "synthetic":
        return make_synthetic(DEFAULT_SIZES[train], seed=seed, train=train)
    if name == "imagefolder":
        from .imagefolder import load_imagefolder  # deferred: imports torchvision and PIL

        channels, height, width = image_shape
        return load_imagefolder(root, train, channels, (height, width), progress)
    missing = [f for f in info.expected_files(True) + info.expected_files(False)
               if not (root / f).is_file()]
    if missing:
        raise NetbuilderError(
            f"dataset {info.name!r} not found in {root.resolve()}: expected {', '.join(missing)}; "
            f"pass --data-dir or set {DATA_ENV}")
    image_file, label_file = (root / f for f in info.expected_files(train))
    images, labels = read_split(image_file, label_file, info.num_classes)
    return ImageDataset(images, labels, info.class_names())
