"""One image file to a uint8 tensor, safely: the pixel count is checked from the header
before anything is decoded, 16-bit images are scaled by their real range, and every failure
(a directory, a missing file, a damaged image) is one line naming the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..errors import NetbuilderError
from ..limits import MAX_IMAGE_PIXELS

MODES = {1: "L", 3: "RGB"}  # spec input channels -> PIL mode
WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}  # 16-bit greyscale (PNG) in PIL
FULL_SCALE_16 = 65535


def read_image(path: str | Path, channels: int, size: tuple[int, int] | None = None) -> Tensor:
    """The image at `path` as uint8 (channels, H, W), grey or RGB as the spec wants, resized to
    `size` (height, width) when given: as it is decoded, so a batch of large photos never
    holds more than one at full size."""
    path = Path(path)
    if channels not in MODES:
        raise NetbuilderError(
            f"images are read as grey or RGB; this spec takes {channels} input channels"
        )
    if path.is_dir():
        raise NetbuilderError(f"{path} is a directory; expected an image file (PNG or JPEG)")
    if not path.is_file():
        raise NetbuilderError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below
            image = Image.open(path)  # reads the header only
        with image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise NetbuilderError(
                    f"{path} declares {width}x{height} pixels; the limit is "
                    f"{MAX_IMAGE_PIXELS:,} pixels"
                )
            if size is not None:  # JPEG decodes straight to a smaller scale, as PIL's draft does
                image.draft(MODES[channels], (size[1], size[0]))
            converted = _converted(image, MODES[channels])
            if size is not None and converted.size != (size[1], size[0]):
                converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(converted, dtype=np.uint8)
    except NetbuilderError:
        raise
    except Image.DecompressionBombError as exc:  # PIL's own, larger bound, checked at open
        raise NetbuilderError(
            f"{path} declares too many pixels ({exc}); the limit is {MAX_IMAGE_PIXELS:,} pixels"
        ) from None
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NetbuilderError(
            f"cannot decode image {path} (expected PNG or JPEG): {first}"
        ) from None
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def _converted(image: Image.Image, mode: str) -> Image.Image:
    """8-bit grey or RGB. A 16-bit image is scaled by 255/65535 first (PIL's own conversion
    would clip every value above 255 to white)."""
    if image.mode in WIDE_MODES:
        wide = np.asarray(image).astype(np.float64)
        image = Image.fromarray(
            np.rint(wide * 255 / FULL_SCALE_16).clip(0, 255).astype(np.uint8), mode="L"
        )
    elif image.mode == "F":
        raise ValueError("floating-point images are not supported")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # what PIL asks for (it warns converting such a palette)
    return image.convert(mode)
