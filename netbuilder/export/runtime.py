"""An exported ONNX file run by ONNX Runtime: its metadata read back into a spec, its test
accuracy through the same batches `eval` gives a checkpoint, and its end-to-end latency.

The session is wrapped as an nn.Module (`OnnxModule`), so scoring a file is the very code that
scores a checkpoint (`training.evaluation.evaluate_model`), not a second copy of it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from ..errors import NetbuilderError
from ..inference import EvalResult, evaluate
from ..report.timing import Timing, measure
from ..spec.config import TrainConfig
from ..spec.document import SpecDocument
from ..spec.types import Spec
from ..spec.validate import validate
from .formats import require

INPUT_NAME = "image"


def session(model: bytes | str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session with every graph optimisation; `threads` intra-op threads
    (None: ONNX Runtime's own choice, one per physical core)."""
    require("onnxruntime", purpose="running an ONNX model")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings are about ONNX Runtime, not the user
    if threads:
        options.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class OnnxModule(nn.Module):
    """A session that takes and returns torch tensors, for code written against nn.Module."""

    def __init__(self, ort_session: Any) -> None:
        super().__init__()
        self.ort_session = ort_session

    def forward(self, x: Tensor) -> Tensor:
        image = x.detach().cpu().float().contiguous()  # channels_last input: NCHW for ONNX
        scores = self.ort_session.run(None, {INPUT_NAME: image.numpy()})[0]
        return torch.from_numpy(scores)


@dataclass(frozen=True)
class OnnxFile:
    """What a netbuilder ONNX file says about itself (its `netbuilder.*` properties)."""

    path: Path
    spec: Spec
    config: TrainConfig  # the spec's train section with the normalisation the model expects
    class_names: list[str]
    properties: dict[str, str]


def read_onnx(path: str | Path) -> OnnxFile:
    """The file's metadata, validated like a spec file; refused when netbuilder did not write it."""
    require("onnx", purpose="reading an ONNX model")
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except OSError as exc:
        raise NetbuilderError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except Exception as exc:  # protobuf's DecodeError and kin: not an ONNX file at all
        raise NetbuilderError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    properties = {entry.key: entry.value for entry in model.metadata_props}
    if "netbuilder.spec" not in properties:
        raise NetbuilderError(
            f"{path}: not exported by netbuilder (no netbuilder.spec property); eval needs "
            "the spec, normalisation and class names that `netbuilder export` stores"
        )
    spec = validate(SpecDocument(yaml.safe_load(properties["netbuilder.spec"]), source=str(path)))
    normalize = json.loads(properties["netbuilder.normalize"])
    config = spec.train.with_normalization(normalize["mean"], normalize["std"])
    names = [str(name) for name in json.loads(properties["netbuilder.class_names"])]
    return OnnxFile(path, spec, config, names, properties)


def evaluate_onnx(
    path: str | Path, data_dir: str | Path | None = None, threads: int | None = None
) -> EvalResult:
    """Test loss, accuracy and confusion matrix of an ONNX file (fp32 or int8)."""
    item = read_onnx(path)
    return evaluate_session(session(item.path, threads), item, data_dir)


def evaluate_session(ort_session: Any, item: OnnxFile, data_dir: str | Path | None) -> EvalResult:
    """`inference.evaluate`, the checkpoint's scoring, with the session as the model."""
    return evaluate(
        OnnxModule(ort_session),
        item.spec,
        item.config,
        data_dir,
        torch.device("cpu"),
        item.path,
        None,  # an ONNX file does not say which epoch it was exported from
        item.class_names,
    )


def time_session(
    ort_session: Any,
    input_shape: tuple[int, ...],
    batch_sizes: tuple[int, ...],
    repeats: int = 20,
    warmup: int = 3,
) -> tuple[Timing, ...]:
    """End-to-end seconds per `run` at each batch size, random inputs."""
    generator = torch.Generator().manual_seed(0)
    timings = []
    for batch in batch_sizes:
        feed = {INPUT_NAME: torch.randn((batch, *input_shape), generator=generator).numpy()}
        timings.append(measure(partial(ort_session.run, None, feed), repeats, warmup))
    return tuple(timings)
