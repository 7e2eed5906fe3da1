"""The MNIST family's IDX files, read and checked once, as uint8 tensors.

Hand-written rather than torchvision's reader: that one asserts on a wrong magic number, and a
truncated file, a count that differs between images and labels or a label out of range only
fail later (an IndexError mid-epoch, or silently fewer images). Here each of those is one
line naming the file, before training starts. The format: two zero bytes, a type byte (0x08:
uint8), a byte with the number of dimensions, each dimension as a big-endian uint32, the data.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import torch
from torch import Tensor

from ..errors import NetbuilderError

UINT8 = 0x08


def read_idx(path: Path, dims: int) -> Tensor:
    """A uint8 IDX file with `dims` dimensions as a tensor of its shape."""
    try:
        with path.open("rb") as handle:
            header = handle.read(4)
            if len(header) < 4 or header[:2] != b"\0\0" or header[2] != UINT8 or header[3] != dims:
                raise NetbuilderError(
                    f"{path} is not an IDX file of uint8 with {dims} "
                    f"dimension{'s' if dims > 1 else ''} (magic number "
                    f"{header.hex() or 'missing'})"
                )
            shape_bytes = handle.read(4 * dims)
            if len(shape_bytes) < 4 * dims:
                raise NetbuilderError(f"{path} is truncated inside its header")
            shape = struct.unpack(f">{dims}I", shape_bytes)
            expected = math.prod(shape)
            size = path.stat().st_size - 4 - 4 * dims
            if size != expected:
                raise NetbuilderError(
                    f"{path} holds {size:,} data bytes but its header "
                    f"declares {'x'.join(map(str, shape))} = {expected:,}; "
                    "the file is truncated or damaged"
                )
            data = bytearray(handle.read(expected))
    except OSError as exc:
        raise NetbuilderError(f"cannot read {path}: {exc.strerror or exc}") from None
    return (
        torch.frombuffer(data, dtype=torch.uint8).view(shape)
        if expected
        else torch.zeros(shape, dtype=torch.uint8)
    )


def read_split(image_path: Path, label_path: Path, num_classes: int) -> tuple[Tensor, Tensor]:
    """(images (N, 1, H, W) uint8, labels (N,) int64) of one split, checked against each other."""
    images = read_idx(image_path, 3)
    labels = read_idx(label_path, 1)
    if len(images) != len(labels):
        raise NetbuilderError(
            f"{image_path} holds {len(images):,} images but {label_path} "
            f"holds {len(labels):,} labels; they must be equal"
        )
    if len(images) == 0:
        raise NetbuilderError(f"{image_path} holds no images")
    if int(labels.max()) >= num_classes:
        raise NetbuilderError(
            f"{label_path} has label {int(labels.max())}; the dataset has "
            f"{num_classes} classes (labels 0-{num_classes - 1})"
        )
    return images.unsqueeze(1).contiguous(), labels.long()
