"""`profile`'s measurements: eager PyTorch per layer (`report.profile`), and the whole model
end to end in ONNX Runtime, fp32 and int8, where the export extra is installed.

The int8 model timed here is calibrated on random images: its speed does not depend on the
calibration ranges, and a profile must not need the dataset. Its accuracy is `export --int8`'s
to measure, on real calibration images."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from typing import Literal

import numpy as np
import torch

from ..compiler import compile_spec
from ..report.profile import Profile, RuntimeTime, profile_model
from ..report.summary import summarize
from .formats import Exportable, onnx_model, require
from .quantize import quantize_int8
from .runtime import session, time_session

Runtime = Literal["auto", "torch", "onnxruntime"]  # the CLI spells the choices too
RANDOM_CALIBRATION = 8  # images; any ranges time the same


def profile_exportable(
    item: Exportable,
    batch_size: int = 64,
    device: str = "cpu",
    runtime: Runtime = "auto",
    threads: int | None = None,
    repeats: int = 20,
) -> Profile:
    """Per-layer eager times at batch 1 and `batch_size`, plus ONNX Runtime fp32/int8 end to
    end (`auto`: when onnxruntime is installed; `onnxruntime`: required; `torch`: skipped)."""
    batch_sizes = (1, batch_size) if batch_size != 1 else (1,)
    model, plan = compile_spec(item.spec)
    model.load_state_dict(item.model.state_dict())  # the plan's modules, with the item's weights
    summary = summarize(model, plan, item.spec)
    profile = profile_model(model, plan, summary, batch_sizes, device, repeats)
    with_ort = runtime == "onnxruntime" or (
        runtime == "auto" and all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime"))
    )
    if not with_ort:
        return profile
    require("onnx", "onnxscript", "onnxruntime", purpose="--runtime onnxruntime")
    fp32 = onnx_model(item)
    noise = torch.Generator().manual_seed(0)
    shape = (RANDOM_CALIBRATION, *item.spec.input_shape)
    calibration: list[np.ndarray] = [torch.randn(shape, generator=noise).numpy()]
    models = {
        "onnxruntime fp32": bytes(fp32.SerializeToString()),
        "onnxruntime int8": quantize_int8(fp32, calibration).data,
    }
    runtimes = tuple(
        RuntimeTime(
            label,
            time_session(session(data, threads), item.spec.input_shape, batch_sizes, repeats),
        )
        for label, data in models.items()
    )
    return replace(profile, runtimes=runtimes)
