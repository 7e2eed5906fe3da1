"""The `train:` section of a spec, declared once.

Each field states its type, default and meaning here, the way a block declares its parameters
in its signature; the JSON Schema (`spec/schema.py`), the typed `Spec.train`, `--set`, the CLI's
choices and the run records all come from these dataclasses. A trailing comment says why a
default is what it is. No torch: reading a spec does not need it.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from ..errors import Location, NetbuilderError
from .datasets import DATASET_NAMES
from .document import PathKey
from .registry import Arg

DEVICES = ("auto", "cpu", "cuda", "mps")
RESUME_FREE = ("compile", "eval_batch_size", "amp", "channels_last", "device", "init_from")
# how a run trains, not what it learns: a resume may change these (init_from: the weights
# come from last.pt by then)
FLAG_FIELDS = ("epochs", "batch_size", "optimizer.lr", "seed", "device")  # `train --epochs` etc.
AMP_MODES = ("device", "auto", "none", "bf16", "fp16")
MEASURED = "auto"  # amp / channels_last: the fastest candidate, timed before the first epoch
Dataset = Literal[DATASET_NAMES]  # type: ignore[valid-type]
Device = Literal[DEVICES]  # type: ignore[valid-type]
AmpMode = Literal[AMP_MODES]  # type: ignore[valid-type]


@dataclass(frozen=True)
class OptimizerConfig:
    """optimizer and its hyper-parameters"""

    name: Annotated[Literal["sgd", "adam", "adamw"], Arg("optimizer")] = "sgd"  # the seeds' one
    lr: Annotated[
        float, Arg("learning rate (the peak rate for one-cycle)", exclusive_minimum=0)
    ] = 0.01  # the seeds' SGD rate
    momentum: Annotated[float, Arg("SGD momentum", minimum=0, exclusive_maximum=1)] = 0.9
    nesterov: Annotated[bool, Arg("Nesterov momentum (SGD)")] = False  # plain, as the seeds
    weight_decay: Annotated[float, Arg("L2 weight decay (decoupled for AdamW)", minimum=0)] = (
        0.0  # small nets underfit before they overfit
    )


@dataclass(frozen=True)
class ScheduleConfig:
    """learning-rate schedule, stepped every batch"""

    name: Annotated[
        Literal["none", "step", "cosine", "onecycle"], Arg("learning-rate schedule")
    ] = "none"  # a constant rate, as the seeds
    step_size: Annotated[int, Arg("epochs between decays (step)", minimum=1)] = 5
    gamma: Annotated[float, Arg("decay factor (step)", minimum=0)] = 0.1  # one decade per step
    pct_start: Annotated[
        float,
        Arg(
            "fraction of the steps spent warming up (onecycle; at least "
            "1.5 steps in a very short run)",
            exclusive_minimum=0,
            exclusive_maximum=1,
        ),
    ] = 0.25  # shorter than torch's 0.3
    warmup_epochs: Annotated[float, Arg("linear warm-up epochs before the schedule", minimum=0)] = (
        0.0
    )


@dataclass(frozen=True)
class NormalizeConfig:
    """per-channel mean and std after scaling pixels to [0, 1]; one value serves all channels"""

    mean: Annotated[
        list[float] | None,
        Arg("channel means (default: the dataset's own, from its training images)", min_items=1),
    ] = None
    std: Annotated[
        list[float] | None,
        Arg(
            "channel standard deviations (default: the dataset's own)",
            exclusive_minimum=0,
            min_items=1,
        ),
    ] = None


@dataclass(frozen=True)
class AugmentConfig:
    """random affine augmentation of training batches"""

    rotation: Annotated[float, Arg("max rotation in degrees", minimum=0, maximum=180)] = 0.0
    translate: Annotated[
        float, Arg("max shift as a fraction of the size", minimum=0, exclusive_maximum=1)
    ] = 0.0
    scale: Annotated[
        tuple[float, float],
        Arg("random zoom range [min, max]", exclusive_minimum=0, min_items=2, max_items=2),
    ] = (1.0, 1.0)


@dataclass(frozen=True)
class TransformsConfig:
    """batch transforms; images are resized to the spec's input size automatically"""

    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class TrainConfig:
    """how `netbuilder train` trains this spec; every field has a default"""

    dataset: Annotated[
        Dataset,
        Arg("dataset (imagefolder: --data-dir holds train/ and test/ or val/, a folder per class)"),
    ] = "mnist"
    epochs: Annotated[int, Arg("passes over the training set", minimum=1)] = 10
    batch_size: Annotated[int, Arg("training batch size", minimum=1)] = 128  # the seeds' size
    eval_batch_size: Annotated[int, Arg("batch size for evaluation", minimum=1)] = 1000
    seed: Annotated[
        int, Arg("seed for weights, shuffling, augmentation and dropout", minimum=0)
    ] = 1  # the seeds' seed
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    label_smoothing: Annotated[
        float, Arg("label smoothing of the cross-entropy", minimum=0, exclusive_maximum=1)
    ] = 0.0
    ema: Annotated[
        float,
        Arg(
            "decay of an exponential moving average of the weights (and "
            "BatchNorm statistics), tested and saved as the model; 0: off",
            minimum=0,
            exclusive_maximum=1,
        ),
    ] = 0.0  # off: the seeds had none
    transforms: TransformsConfig = field(default_factory=TransformsConfig)
    device: Annotated[Device, Arg("where to train: auto picks CUDA, then MPS, then the CPU")] = (
        "auto"
    )
    amp: Annotated[
        AmpMode,
        Arg(
            "autocast precision: device is bf16 (else fp16) on CUDA and full precision "
            "elsewhere; auto times each candidate before the first epoch and keeps the "
            "fastest; bf16 also runs on CPUs"
        ),
    ] = "device"  # what the device does best as a rule; auto costs a few seconds of timing
    compile: Annotated[bool, Arg("torch.compile the model")] = False  # no gain on small CPUs
    channels_last: Annotated[
        bool | Literal["auto"],
        Arg("channels-last (NHWC) memory format; auto: timed like amp, the faster kept"),
    ] = False  # NCHW: PyTorch's own default
    sync_batchnorm: Annotated[
        bool, Arg("with several processes (torchrun): BatchNorm statistics over the global batch")
    ] = False
    init_from: Annotated[
        str | None,
        Arg(
            "weights to start from: a checkpoint or state_dict file, or a torchvision weights "
            "name (torchvision:MobileNet_V3_Small_Weights.IMAGENET1K_V1)"
        ),
    ] = None  # from scratch, as the seeds
    freeze: Annotated[
        tuple[str, ...],
        Arg("layers whose weights stay as they start (names or prefixes, e.g. stem, block1)"),
    ] = ()

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> TrainConfig:
        """The config a schema-valid `train:` mapping describes, defaults filled in."""
        config: TrainConfig = from_data(cls, data or {})
        return config

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON data (lists, not tuples) that `from_data` reads back."""
        plain: dict[str, Any] = _plain(dataclasses.asdict(self))
        return plain

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def with_normalization(self, mean: list[float] | None, std: list[float] | None) -> TrainConfig:
        """This config normalising with `mean` and `std` (training's resolved statistics, or
        what an exported model was trained with); the augmentation is kept."""
        normalize = dataclasses.replace(self.transforms.normalize, mean=mean, std=std)
        return self.replace(transforms=dataclasses.replace(self.transforms, normalize=normalize))


def from_data(cls: type, data: dict[str, Any]) -> Any:
    """Instantiate a config dataclass from plain data, recursively; absent keys keep defaults."""
    hints = get_type_hints(cls, include_extras=True)
    values = {}
    for item in dataclasses.fields(cls):
        if item.name not in data:
            continue
        kind, value = unwrap(hints[item.name])[0], data[item.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            values[item.name] = from_data(kind, value or {})
        elif get_origin(kind) is tuple and value is not None:
            values[item.name] = tuple(value)
        else:
            values[item.name] = value
    return cls(**values)


def field_declaration(path: str, cls: type = TrainConfig) -> tuple[Any, Arg]:
    """(type, Arg) of a dotted field path such as 'optimizer.lr'."""
    head, _, rest = path.partition(".")
    kind, arg = unwrap(get_type_hints(cls, include_extras=True)[head])
    if rest:
        return field_declaration(rest, kind)
    if arg is None:
        raise KeyError(path)
    return kind, arg


def unwrap(hint: Any) -> tuple[Any, Arg | None]:
    """(type, Arg) of an `Annotated[type, Arg(...)]` hint; a bare type has no Arg."""
    if get_origin(hint) is Annotated:
        base, *metadata = get_args(hint)
        return base, next((m for m in metadata if isinstance(m, Arg)), None)
    return hint, None


def is_union(kind: Any) -> bool:
    """`A | B` (or Optional[A]): the value may be any of the members."""
    return get_origin(kind) in (Union, types.UnionType)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def config_errors(
    config: TrainConfig, input_channels: int, locate: Callable[[PathKey], Location] | None = None
) -> list[NetbuilderError]:
    """What the schema cannot check alone: settings that depend on each other or on the spec,
    each located at its line of the `train:` section when `locate` knows the file."""
    problems: list[tuple[PathKey, str]] = []
    normalize = config.transforms.normalize
    for key in ("mean", "std"):
        values = getattr(normalize, key)
        if values is not None and len(values) not in (1, input_channels):
            problems.append(
                (
                    ("transforms", "normalize", key),
                    f"has {len(values)} values; expected 1 or {input_channels} (the "
                    f"spec's input channels), got {values}",
                )
            )
    low, high = config.transforms.augment.scale
    if low > high:
        problems.append((("transforms", "augment", "scale"), f"is [min, max]; got [{low}, {high}]"))
    schedule = config.schedule
    if schedule.name == "onecycle" and schedule.warmup_epochs > 0:
        problems.append(
            (
                ("schedule", "warmup_epochs"),
                "onecycle warms up by itself; set "
                f"pct_start instead of warmup_epochs (got {schedule.warmup_epochs})",
            )
        )
    if schedule.warmup_epochs >= config.epochs:
        problems.append(
            (
                ("schedule", "warmup_epochs"),
                f"{schedule.warmup_epochs} must be less than train.epochs ({config.epochs})",
            )
        )
    optimizer = config.optimizer
    if optimizer.name == "sgd" and optimizer.nesterov and optimizer.momentum == 0:
        problems.append(
            (("optimizer", "nesterov"), "Nesterov momentum needs momentum > 0, got momentum 0")
        )
    return [
        NetbuilderError(
            message,
            locate(("train", *path)) if locate else None,
            ".".join(("train", *map(str, path))),
        )
        for path, message in problems
    ]
