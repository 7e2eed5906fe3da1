"""Using a trained checkpoint: test-set evaluation and top-k prediction on image files.

The model is rebuilt from the spec stored inside the checkpoint, so neither command needs the
YAML file the run started from (only plugin blocks, if the spec used any, must be importable).
This module needs the model, the checkpoint and the data, never the training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .compiler import compile_spec
from .compiler.heads import Head, output_kind
from .errors import NetbuilderError, SpecErrors
from .spec.config import TrainConfig
from .spec.document import SpecDocument
from .spec.types import Spec
from .spec.validate import validate
from .training.checkpoint import check_fingerprint, load_checkpoint
from .training.device import autocast_dtype, resolve_device
from .training.evaluation import evaluate_model, to_probabilities
from .training.inputs import image_batch, load_split, make_loader


@dataclass(frozen=True)
class TrainedModel:
    """A checkpoint's model with the spec and train config (as trained) it came from."""

    model: nn.Module
    spec: Spec
    config: TrainConfig
    class_names: list[str]
    checkpoint: dict[str, Any]
    path: Path
    head: Head  # what the model outputs (logits, log-probabilities or probabilities)


@dataclass(frozen=True)
class EvalResult:
    checkpoint: Path
    spec_name: str
    dataset: str
    epoch: int | None  # None: an ONNX file, which does not record it
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
    """Validate the stored spec data like a file (errors name the checkpoint as their source);
    a block the spec uses but nobody registered is most likely a plugin not loaded."""
    check_fingerprint(checkpoint, path)
    try:
        return validate(SpecDocument(checkpoint["spec"], source=str(path)))
    except NetbuilderError as error:
        errors = error.errors if isinstance(error, SpecErrors) else [error]
        unknown = [e for e in errors if e.message.startswith("unknown block")]
        if unknown:
            name = unknown[0].message.split("'")[1]
            raise NetbuilderError(
                f"{path} uses block '{name}', which is not registered; load "
                "the module that defines it with --plugin MODULE"
            ) from None
        raise


def load_trained(path: str | Path, device: torch.device) -> TrainedModel:
    path = Path(path)
    checkpoint = load_checkpoint(path, map_location="cpu")
    spec = spec_from_checkpoint(checkpoint, path)
    model, plan = compile_spec(spec)  # after the meta-device size checks
    try:
        model.load_state_dict(checkpoint["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise NetbuilderError(
            f"{path}: the weights do not fit spec '{spec.name}': {first}"
        ) from None
    model.to(device).eval()
    try:
        config = TrainConfig.from_data(checkpoint["train_config"])
    except TypeError as exc:
        raise NetbuilderError(
            f"{path}: its train config is not one netbuilder wrote ({exc})"
        ) from None
    names = [str(name) for name in checkpoint["class_names"]]
    if len(names) != spec.num_classes:
        raise NetbuilderError(
            f"{path} names {len(names)} classes but its spec has {spec.num_classes}"
        )
    return TrainedModel(model, spec, config, names, checkpoint, path, output_kind(plan))


def evaluate_checkpoint(
    path: str | Path, data_dir: str | Path | None = None, device: str = "auto"
) -> EvalResult:
    """Test loss, accuracy, per-class accuracy and confusion matrix of a checkpoint."""
    torch_device = resolve_device(device)
    trained = load_trained(path, torch_device)
    epoch = int(trained.checkpoint["epoch"])
    return evaluate(
        trained.model,
        trained.spec,
        trained.config,
        data_dir,
        torch_device,
        trained.path,
        epoch,
        trained.class_names,
    )


def evaluate_spec(
    spec: Spec, init_from: str, data_dir: str | Path | None = None, device: str = "auto"
) -> EvalResult:
    """The same for a spec's model started from `init_from` (pretrained weights, before any
    training of the spec's own): what fine-tuning starts from."""
    from .training.inputs import resolve_normalization
    from .training.pretrained import initialise_from

    torch_device = resolve_device(device)
    torch.manual_seed(spec.train.seed)
    model = compile_spec(spec)[0]
    initialise_from(model, init_from)
    train_set = load_split(spec, spec.train, True, data_dir)
    config = resolve_normalization(spec.train, train_set)
    return evaluate(
        model.to(torch_device).eval(),
        spec,
        config,
        data_dir,
        torch_device,
        Path(init_from),
        0,
        train_set.classes,
    )


def evaluate(
    model: nn.Module,
    spec: Spec,
    config: TrainConfig,
    data_dir: str | Path | None,
    device: torch.device,
    source: Path,
    epoch: int | None,
    class_names: list[str],
) -> EvalResult:
    test_set = load_split(spec, config, False, data_dir)
    loader = make_loader(spec, config, test_set, False, device)
    stats = evaluate_model(
        model,
        loader,
        spec.num_classes,
        autocast_dtype(config.amp, device),
        config.channels_last is True,  # scoring times nothing: auto is the plain layout
    )
    return EvalResult(
        source,
        spec.name,
        config.dataset,
        epoch,
        stats.loss,
        stats.accuracy,
        stats.per_class_accuracy,
        stats.confusion,
        class_names,
    )


def predict(
    path: str | Path, image_paths: list[str | Path], top_k: int = 3, device: str = "cpu"
) -> list[Prediction]:
    """The top-k classes and probabilities of each image, preprocessed as in training."""
    if top_k < 1:
        raise NetbuilderError(f"top_k must be at least 1, got {top_k}")
    if not image_paths:
        raise NetbuilderError("predict needs at least one image")
    torch_device = resolve_device(device)
    trained = load_trained(path, torch_device)
    spec = trained.spec
    batch = image_batch(image_paths, spec, trained.config).to(torch_device)
    with torch.no_grad():
        probabilities = to_probabilities(trained.head, trained.model(batch)).cpu()
    values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    return [
        Prediction(
            Path(image),
            [
                ClassScore(int(i), trained.class_names[int(i)], float(p))
                for p, i in zip(row_values, row_indices, strict=True)
            ],
        )
        for image, row_values, row_indices in zip(image_paths, values, indices, strict=True)
    ]
