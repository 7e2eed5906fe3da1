"""Where a model runs and in which precision: device choice, autocast, memory format."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor

from ..errors import NetbuilderError
from ..spec.config import DEVICES


def resolve_device(name: str) -> torch.device:
    """auto picks CUDA, then Apple's MPS, then the CPU; asking for a missing one is an error."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name not in DEVICES:
        raise NetbuilderError(f"unknown device '{name}'; expected one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise NetbuilderError(
            "--device cuda: no CUDA device is available; use --device cpu or auto"
        )
    if name == "mps" and not has_mps:
        raise NetbuilderError("--device mps: MPS is not available; use --device cpu or auto")
    return torch.device(name)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast precision for `train.amp` on `device`; None: full precision.

    device: bf16 on CUDA where the GPU has it (no loss scaling needed), else fp16; full
    precision elsewhere. auto is settled by timing (`training.speed`) before a run trains;
    where nothing is timed (scoring a spec), it is the device's choice.
    bf16 runs on CPUs too (fast where they have bf16 instructions: `make bench`);
    fp16 is for CUDA only.
    """
    if amp == "none" or (amp in ("device", "auto") and device.type != "cuda"):
        return None
    if amp in ("device", "auto"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise NetbuilderError(
            f"train.amp: fp16 needs a CUDA device, this run is on {device.type}; use bf16 or none"
        )
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise NetbuilderError("train.amp: this GPU has no bf16; use fp16 or none")
    if amp == "bf16" and device.type == "mps":
        raise NetbuilderError("train.amp: bf16 is not offered on MPS; use none")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def prepare(x: Tensor, channels_last: bool) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
