"""Which dataset, from where: the data root, the files a dataset keeps there, and one call that
returns a split as an in-memory ImageDataset."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import NetbuilderError
from ..spec.datasets import DatasetInfo, dataset_info
from .idx import read_split
from .loader import ImageDataset
from .synthetic import DEFAULT_SIZES, make_synthetic

DATA_ENV = "NETBUILDER_DATA"
SHARED_DATA_DIR = Path("..") / "shared" / "data"  # the dev checkout's sibling folder
DEFAULT_DATA_DIR = Path("data")
IDX_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def resolve_data_dir(cli_value: str | Path | None) -> Path:
    """Pick the data root: --data-dir, else $NETBUILDER_DATA, else ../shared/data, else ./data."""
    if cli_value:
        return Path(cli_value).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    if SHARED_DATA_DIR.is_dir():
        return SHARED_DATA_DIR
    return DEFAULT_DATA_DIR


def expected_files(info: DatasetInfo, train: bool) -> list[str]:
    """Paths relative to the data root of one split's IDX files (torchvision's layout)."""
    if info.folder is None:
        return []
    return [f"{info.folder}/raw/{name}" for name in IDX_FILES[train]]


def load_dataset(
    name: str,
    root: str | Path,
    train: bool,
    *,
    seed: int = 0,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    progress: bool = True,
) -> ImageDataset:
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
    missing = [
        f
        for f in expected_files(info, True) + expected_files(info, False)
        if not (root / f).is_file()
    ]
    if missing:
        raise NetbuilderError(
            f"dataset {info.name!r} not found in {root.resolve()}: expected {', '.join(missing)}; "
            f"pass --data-dir or set {DATA_ENV}"
        )
    image_file, label_file = (root / f for f in expected_files(info, train))
    images, labels = read_split(image_file, label_file, info.num_classes)
    return ImageDataset(images, labels, info.class_names())
