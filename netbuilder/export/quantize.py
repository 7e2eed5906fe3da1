"""int8 by ONNX Runtime's static quantization, the maintained path (`torch.ao.quantization` is
deprecated): QDQ format (QuantizeLinear/DequantizeLinear pairs any ONNX runtime reads),
per-channel int8 weights, int8 activations whose ranges come from calibration images.

Calibration images are training images (never test images: the accuracy measured after must
not have been seen) through the same input path as training, without augmentation: the
spec's resize, channels and normalisation, `training.inputs.make_loader`'s batches.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data.files import atomic_write_bytes, check_target
from ..data.loader import BatchLoader
from ..errors import NetbuilderError
from ..spec.config import TrainConfig
from ..spec.types import Spec
from ..training.inputs import load_split, make_transform
from .formats import Exportable, onnx_model, require
from .runtime import OnnxFile, evaluate_session, session

CALIBRATION_IMAGES = 512  # MinMax ranges settle after a few hundred images of a small dataset
CALIBRATION_BATCH = 64
CALIBRATION_SEED = 20261207  # which training images calibrate: fixed, so an export repeats


@dataclass(frozen=True)
class Int8Model:
    """The quantized model's bytes and how it was made."""

    data: bytes
    calibration_images: int
    kept_fp32: tuple[str, ...]  # ONNX node names left in float


def calibration_batches(
    spec: Spec,
    config: TrainConfig,
    count: int = CALIBRATION_IMAGES,
    data_dir: str | Path | None = None,
) -> list[np.ndarray]:
    """`count` training images, a seeded random choice, as the model's float input."""
    if count < 1:
        raise NetbuilderError(f"--calibration must be at least 1 image, got {count}")
    train_set = load_split(spec, config, True, data_dir, progress=False)
    loader = BatchLoader(
        train_set,
        CALIBRATION_BATCH,
        transform=make_transform(spec, config),
        train=False,  # no augmentation: the images the deployed model will see
        shuffle=True,
        seed=CALIBRATION_SEED,
    )
    batches, taken = [], 0
    for x, _ in loader.batches(0):
        batches.append(x[: count - taken].numpy())
        taken += len(batches[-1])
        if taken >= count:
            break
    return batches


def quantize_int8(
    fp32_model: Any, batches: list[np.ndarray], keep_fp32: tuple[str, ...] = ()
) -> Int8Model:
    """Static QDQ int8 with per-channel weights; `keep_fp32` names ONNX nodes left in float
    (a layer the int8 accuracy is sensitive to). The fp32 model's properties are kept."""
    require("onnx", "onnxruntime", purpose="--int8")
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]  # untyped base
        def __init__(self) -> None:
            self.feeds: Iterator[dict[str, np.ndarray]] = iter(
                {"image": batch} for batch in batches
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory(prefix="netbuilder-int8-") as folder:
        fp32_path, prepared, int8_path = (Path(folder) / n for n in ("a.onnx", "b.onnx", "c.onnx"))
        onnx.save(fp32_model, str(fp32_path))
        quant_pre_process(str(fp32_path), str(prepared))  # shapes inferred, BatchNorm folded
        quantize_static(
            str(prepared),
            str(int8_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(keep_fp32),
        )
        model = onnx.load(str(int8_path))
    properties = {entry.key: entry.value for entry in fp32_model.metadata_props}
    onnx.helper.set_model_props(model, properties)
    return Int8Model(
        bytes(model.SerializeToString()), sum(len(b) for b in batches), tuple(keep_fp32)
    )


@dataclass(frozen=True)
class Int8Report:
    """What `export --int8` measured: test accuracy and file size, fp32 beside int8."""

    calibration_images: int
    fp32_accuracy: float
    int8_accuracy: float
    fp32_bytes: int
    int8_bytes: int
    kept_fp32: tuple[str, ...]

    @property
    def drop_points(self) -> float:
        """fp32 minus int8 accuracy, in percentage points."""
        return 100 * (self.fp32_accuracy - self.int8_accuracy)


def int8_export(
    item: Exportable,
    calibration: int = CALIBRATION_IMAGES,
    data_dir: str | Path | None = None,
    keep_fp32: tuple[str, ...] = (),
) -> tuple[bytes, Int8Report]:
    """The int8 ONNX model and its report, stored in it as the `netbuilder.int8` property:
    both models scored on the test split by ONNX Runtime, so the drop is measured, not hoped."""
    import onnx

    config = item.spec.train.with_normalization(item.mean, item.std)
    fp32_model = onnx_model(item)
    unknown = sorted(set(keep_fp32) - {node.name for node in fp32_model.graph.node})
    if unknown:
        raise NetbuilderError(
            f"--keep-fp32 {unknown[0]}: no such ONNX node; the nodes are "
            + ", ".join(node.name for node in fp32_model.graph.node[:12])
            + (", ..." if len(fp32_model.graph.node) > 12 else "")
        )
    batches = calibration_batches(item.spec, config, calibration, data_dir)
    int8 = quantize_int8(fp32_model, batches, keep_fp32)
    fp32_data = bytes(fp32_model.SerializeToString())
    described = OnnxFile(Path(item.spec.source), item.spec, config, item.class_names, {})
    accuracy = [
        evaluate_session(session(data), described, data_dir).accuracy
        for data in (fp32_data, int8.data)
    ]
    report = Int8Report(
        int8.calibration_images, accuracy[0], accuracy[1], len(fp32_data), 0, tuple(keep_fp32)
    )
    model = onnx.load_from_string(int8.data)
    properties = {entry.key: entry.value for entry in model.metadata_props}
    stored = {key: value for key, value in asdict(report).items() if key != "int8_bytes"}
    properties["netbuilder.int8"] = json.dumps(stored)  # its own size is the file's
    onnx.helper.set_model_props(model, properties)
    data = bytes(model.SerializeToString())
    return data, replace(report, int8_bytes=len(data))


def write_int8(
    item: Exportable,
    out: str | Path,
    calibration: int = CALIBRATION_IMAGES,
    data_dir: str | Path | None = None,
    keep_fp32: tuple[str, ...] = (),
) -> Int8Report:
    """`export --format onnx --int8`: the int8 model written atomically to `out`."""
    check_target(Path(out))  # before minutes of export, calibration and scoring
    data, report = int8_export(item, calibration, data_dir, keep_fp32)
    atomic_write_bytes(Path(out), data)
    return report
