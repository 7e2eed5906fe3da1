"""`dataset: imagefolder`: the user's own images in torchvision's ImageFolder layout,
decoded once into the in-memory uint8 tensors the trainer uses, and cached next to the data.

    DATA_DIR/train/<class>/*.png     training images, one folder per class
    DATA_DIR/test/<class>/*.png      test images (or val/), with the training set's classes

Class names come from the training folders (sorted, as torchvision does). The cache file in
DATA_DIR/.netbuilder-cache/ is keyed by the file list (paths, sizes and modification times)
and the spec's input shape, so it is rebuilt whenever a file or the shape changes.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from tqdm import tqdm

from ..errors import NetbuilderError
from .files import atomic_write_bytes
from .images import read_image
from .loader import ImageDataset

TEST_FOLDERS = ("test", "val")
CACHE_DIR = ".netbuilder-cache"
CACHE_VERSION = 1
PROGRESS_DELAY_S = 1.0  # show a progress bar only when decoding takes longer than this


def split_folder(root: Path, train: bool) -> Path:
    names = ("train",) if train else TEST_FOLDERS
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise NetbuilderError(
        f"imagefolder: {root} has no {' or '.join(f'{n}/' for n in names)} "
        "folder; expected DATA_DIR/train/<class>/... and DATA_DIR/test/<class>/"
        "... (pass --data-dir)"
    )


def load_imagefolder(
    root: Path, train: bool, channels: int, size: tuple[int, int], progress: bool = True
) -> ImageDataset:
    """One split as an ImageDataset, from the cache when the files are unchanged."""
    classes, samples = list_samples(root, train)
    key = cache_key(samples, channels, size)
    cache = root / CACHE_DIR / f"{'train' if train else 'test'}-{key[:20]}.pt"
    cached = _read_cache(cache, len(samples), channels, size)
    if cached is not None:
        return ImageDataset(cached[0], cached[1], classes)
    images = torch.empty((len(samples), channels, *size), dtype=torch.uint8)
    bar = tqdm(
        samples,
        desc=f"decoding {root.name}/{'train' if train else 'test'}",
        unit="image",
        delay=PROGRESS_DELAY_S,
        disable=None if progress else True,
    )
    for index, (path, _) in enumerate(bar):
        images[index] = read_image(path, channels, size)
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    _write_cache(cache, images, labels)
    return ImageDataset(images, labels, classes)


def list_samples(root: Path, train: bool) -> tuple[list[str], list[tuple[str, int]]]:
    """(class names, [(path, class index)]) of a split; the classes are the training set's."""
    try:
        classes, class_to_index = find_classes(str(split_folder(root, True)))
        folder = split_folder(root, train)
        unknown = sorted({p.name for p in folder.iterdir() if p.is_dir()} - set(classes))
        if unknown:
            raise NetbuilderError(
                f"imagefolder: {folder} has class folders the training set "
                f"lacks: {', '.join(unknown)}"
            )
        samples = make_dataset(str(folder), class_to_index, IMG_EXTENSIONS, allow_empty=not train)
    except (FileNotFoundError, OSError) as exc:
        raise NetbuilderError(f"imagefolder: {exc}") from None
    if not samples:
        raise NetbuilderError(
            f"imagefolder: {folder} holds no images ({', '.join(IMG_EXTENSIONS)})"
        )
    return classes, samples


def cache_key(samples: list[tuple[str, int]], channels: int, size: tuple[int, int]) -> str:
    entries = []
    for path, label in samples:
        status = Path(path).stat()
        entries.append([path, label, status.st_size, status.st_mtime_ns])
    text = json.dumps([CACHE_VERSION, channels, list(size), entries])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_cache(
    path: Path, count: int, channels: int, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, weights_only=True)
        images, labels = data["images"], data["labels"]
    except Exception:  # a damaged cache is rebuilt, never trusted
        return None
    if images.dtype != torch.uint8 or tuple(images.shape) != (count, channels, *size):
        return None
    return images, labels


def _write_cache(path: Path, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Best effort: a read-only data folder only costs decoding again next time."""
    buffer = io.BytesIO()
    torch.save({"images": images, "labels": labels}, buffer)
    try:
        path.parent.mkdir(exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
    except (OSError, NetbuilderError):
        pass
