"""Using a trained checkpoint: test-set evaluation and top-k prediction on image files.

The model is rebuilt from the spec stored inside the checkpoint, so neither command needs the
YAML file the run started from (only plugin blocks, if the spec used any, must be importable).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import check_same_spec, load_checkpoint
from .compiler import build_model
from .errors import NetbuilderError
from .schema import validate
from .spec import Spec, SpecDocument
from .train import (
    TrainConfig,
    autocast_dtype,
    class_names,
    evaluate_model,
    make_loader,
    make_transform,
    resolve_device,
    select_loss,
    to_probabilities,
)

IMAGE_MODES = {1: "GRAY", 3: "RGB"}  # spec input channels -> torchvision ImageReadMode


@dataclass(frozen=True)
class TrainedModel:
    """A checkpoint's model with the spec and train config it was trained with."""

    model: nn.Module
    spec: Spec
    config: TrainConfig
    checkpoint: dict[str, Any]
    path: Path


@dataclass(frozen=True)
class EvalResult:
    checkpoint: Path
    spec_name: str
    dataset: str
    epoch: int
    loss: float
    accuracy: float
    per_class_accuracy: list[float]
    confusion: Tensor  # (classes, classes) counts; rows true, columns predicted
    class_names: list[str]

    @property
    def num_samples(self) -> int:
        return int(self.confusion.sum())


@dataclass(frozen=True)
class ClassScore:
    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class Prediction:
    image: Path
    top: list[ClassScore]  # most probable first


def spec_from_checkpoint(checkpoint: dict[str, Any], path: Path) -> Spec:
    """Validate the stored spec data like a file (errors name the checkpoint as their source)."""
    data = checkpoint["spec"]
    check_same_spec(checkpoint, data, path)  # a fingerprint that disagrees means tampering
    return validate(SpecDocument(data, source=str(path)))


def load_trained(path: str | Path, device: torch.device) -> TrainedModel:
    path = Path(path)
    checkpoint = load_checkpoint(path, map_location="cpu")
    spec = spec_from_checkpoint(checkpoint, path)
    model = build_model(spec)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise NetbuilderError(f"{path}: the weights do not fit spec '{spec.name}': {first}"
                              ) from None
    model.to(device).eval()
    return TrainedModel(model, spec, TrainConfig.from_spec(spec), checkpoint, path)


def evaluate_checkpoint(path: str | Path, data_dir: str | Path | None = None,
                        device: str = "auto") -> EvalResult:
    """Test loss, accuracy, per-class accuracy and confusion matrix of a checkpoint."""
    torch_device = resolve_device(device)
    trained = load_trained(path, torch_device)
    config, spec = trained.config, trained.spec
    loader = make_loader(spec, config, False, data_dir, torch_device)
    stats = evaluate_model(trained.model, loader, select_loss(trained.model, 0.0),
                           spec.num_classes, autocast_dtype(config.amp, torch_device))
    return EvalResult(trained.path, spec.name, config.dataset, int(trained.checkpoint["epoch"]),
                      stats.loss, stats.accuracy, stats.per_class_accuracy, stats.confusion,
                      class_names(config.dataset))


def read_image_file(path: str | Path, channels: int) -> Tensor:
    """A PNG/JPEG file as uint8 (C, H, W), converted to grey or RGB to match the spec."""
    from torchvision.io import ImageReadMode, decode_image  # deferred: slow import

    path = Path(path)
    if channels not in IMAGE_MODES:
        raise NetbuilderError(f"predict reads grey or RGB images; this spec takes {channels} "
                              "input channels")
    if not path.is_file():
        raise NetbuilderError(f"image not found: {path}")
    try:
        return decode_image(str(path), mode=getattr(ImageReadMode, IMAGE_MODES[channels]))
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NetbuilderError(f"cannot decode image {path} (expected PNG or JPEG): {first}"
                              ) from None


def predict(path: str | Path, image_paths: list[str | Path], top_k: int = 3,
            device: str = "cpu") -> list[Prediction]:
    """The top-k classes and probabilities of each image, preprocessed as in training."""
    if top_k < 1:
        raise NetbuilderError(f"top_k must be at least 1, got {top_k}")
    if not image_paths:
        raise NetbuilderError("predict needs at least one image")
    torch_device = resolve_device(device)
    trained = load_trained(path, torch_device)
    spec = trained.spec
    transform = make_transform(spec, trained.config)
    images = [read_image_file(image, spec.input_shape[0]) for image in image_paths]
    batch = torch.cat([transform(image.unsqueeze(0)) for image in images]).to(torch_device)
    with torch.no_grad():
        probabilities = to_probabilities(trained.model, trained.model(batch)).float().cpu()
    names = class_names(trained.config.dataset)
    values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    return [
        Prediction(Path(image), [ClassScore(int(i), names[int(i)], float(p))
                                 for p, i in zip(row_values, row_indices, strict=True)])
        for image, row_values, row_indices in zip(image_paths, values, indices, strict=True)
    ]
