"""Starting from trained weights: a state_dict or checkpoint file, or torchvision's weights by
name (`torchvision:MobileNet_V3_Small_Weights.IMAGENET1K_V1`), loaded into a spec's model.

The source's tensors are matched to the model's by the first rule that fits all of them: by
key where the names agree; by registration order where the shapes line up one to one; by
registration order within each shape where the two register the same tensors in a different
order (ConvNeXt's layer scale comes before its block's layers in torchvision). Two
adaptations make the weights of another task usable: a first conv with another number of
input channels takes the mean of the source's kernels over its channels, repeated (RGB
weights on grey images, as timm's `in_chans` does), and a classifier with another number of
classes keeps its fresh initialisation. Everything else must fit, or one line names the
first tensor that does not.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import NetbuilderError, excerpt
from .checkpoint import load_checkpoint

TORCHVISION = "torchvision:"
State = Mapping[str, Tensor]


@dataclass
class Loaded:
    """What an initialisation did, for the one line the CLI prints."""

    source: str
    rule: str  # "key", "order" or "order within each shape"
    adapted: list[str] = field(default_factory=list)  # first conv's input channels
    fresh: list[str] = field(default_factory=list)  # kept their initialisation (a new head)


def match_state(ours: State, theirs: State) -> tuple[dict[str, str], str]:
    """{our key: their key} for every tensor, and the rule that matched them."""
    if set(ours) == set(theirs):
        return {key: key for key in ours}, "key"
    if len(ours) != len(theirs):
        raise NetbuilderError(
            f"the source holds {len(theirs)} tensors where the model holds "
            f"{len(ours)}; they are not the same architecture"
        )
    pairs = dict(zip(ours, theirs, strict=True))
    if all(_compatible(ours[a], theirs[b]) for a, b in pairs.items()):
        return pairs, "order"
    by_shape: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for key, tensor in theirs.items():
        by_shape[_shape_key(tensor)].append(key)
    matched = {}
    for key, tensor in ours.items():
        candidates = by_shape.get(_shape_key(tensor))
        if not candidates:
            first = next(a for a, b in pairs.items() if not _compatible(ours[a], theirs[b]))
            raise NetbuilderError(
                f"the weights do not fit: {first} is {list(ours[first].shape)} but the source's "
                f"tensor at its place, {pairs[first]}, is {list(theirs[pairs[first]].shape)}"
            )
        matched[key] = candidates.pop(0)
    return matched, "order within each shape"


def _shape_key(tensor: Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)


def _compatible(mine: Tensor, source: Tensor) -> bool:
    return tuple(mine.shape) == tuple(source.shape)


def adapt(ours: State, theirs: State, head: int) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """The source made to fit where another task changed it: (state, our keys adapted, our
    keys left fresh). The first conv is the first 4-d tensor of each; the classifier the last
    `head` tensors of each (its weight and bias)."""
    theirs = dict(theirs)
    adapted: list[str] = []
    fresh: list[str] = []
    mine = next((key for key, tensor in ours.items() if tensor.dim() == 4), None)
    source = next((key for key, tensor in theirs.items() if tensor.dim() == 4), None)
    if mine is not None and source is not None:
        weight, wanted = theirs[source], ours[mine]
        if (
            weight.shape[1] != wanted.shape[1]
            and weight.shape[0] == wanted.shape[0]
            and weight.shape[2:] == wanted.shape[2:]
        ):
            scale = weight.shape[1] / wanted.shape[1]  # grey from RGB: the kernels' sum
            theirs[source] = (
                weight.mean(dim=1, keepdim=True).repeat(1, wanted.shape[1], 1, 1) * scale
            )
            adapted.append(mine)
    for key, source_key in zip(
        list(ours)[-head:] if head else [], list(theirs)[-head:] if head else [], strict=True
    ):
        if (
            theirs[source_key].shape != ours[key].shape
            and theirs[source_key].dim() == ours[key].dim()
        ):
            theirs[source_key] = ours[key]  # a classifier for other classes: keep ours
            fresh.append(key)
    return theirs, adapted, fresh


def read_source(source: str) -> dict[str, Tensor]:
    """A state_dict: a netbuilder checkpoint's model, a file holding a state_dict, or a
    torchvision weights name."""
    if source.startswith(TORCHVISION):
        return _torchvision_state(source.removeprefix(TORCHVISION))
    path = Path(source)
    if not path.is_file():
        raise NetbuilderError(
            f"--init-from {source}: no such file (or a torchvision weights "
            "name, torchvision:<Weights>.<NAME>)"
        )
    try:
        payload = load_checkpoint(path)
        return dict(payload["model"])
    except NetbuilderError as error:
        if "not a netbuilder checkpoint" not in error.message:
            raise
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many kinds for a file that is not one
        raise NetbuilderError(
            f"--init-from {source}: not a state_dict ({type(exc).__name__})"
        ) from None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise NetbuilderError(f"--init-from {source}: holds no state_dict of tensors")
    return dict(state)


def _torchvision_state(name: str) -> dict[str, Tensor]:
    """Weights through torchvision's own API and cache (`$TORCH_HOME`); without a network and
    without the file in the cache, one line names the path to fill."""
    enum_name, _, member = name.partition(".")
    models = importlib.import_module("torchvision.models")
    weights_enum = getattr(models, enum_name, None)
    if weights_enum is None or not member or not hasattr(weights_enum, member):
        raise NetbuilderError(
            f"--init-from torchvision:{name}: not a torchvision weights "
            "name, e.g. torchvision:MobileNet_V3_Small_Weights.IMAGENET1K_V1"
        )
    weights = getattr(weights_enum, member)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # torch.hub's "Downloading: ..." line
            return dict(weights.get_state_dict(progress=False, check_hash=True))
    except (OSError, RuntimeError) as exc:  # urllib's URLError is an OSError
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise NetbuilderError(
            f"--init-from torchvision:{name}: cannot download {weights.url} "
            f"({type(exc).__name__}); put the file at {cache}"
        ) from None


def initialise_from(model: nn.Module, source: str, head: int = 2) -> Loaded:
    """Load `source` into `model` (see the module docstring); where the source is adapted
    away (a classifier for other classes), the model keeps its own initialisation."""
    ours = model.state_dict()
    theirs, adapted, fresh = adapt(ours, read_source(source), head)
    mapping, rule = match_state(ours, theirs)
    model.load_state_dict({mine: theirs[yours] for mine, yours in mapping.items()})
    return Loaded(source, rule, adapted, fresh)


def freeze(model: nn.Module, names: Sequence[str]) -> list[str]:
    """Stop the gradients of the layers named (a layer name or a prefix of names: `block1`
    holds block1.expand, block1.se, ...); the parameters frozen, by name."""
    parameters = dict(model.named_parameters())
    frozen = []
    for name in names:
        chosen = [key for key in parameters if key == name or key.startswith(f"{name}.")]
        if not chosen:
            layers = sorted(
                {
                    ".".join(key.split(".")[:count])
                    for key in parameters
                    for count in range(1, key.count(".") + 1)
                }
            )
            close = difflib.get_close_matches(name, layers, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise NetbuilderError(
                f"train.freeze: no layer with weights is named {excerpt(name)}{hint}"
            )
        for key in chosen:
            parameters[key].requires_grad_(False)
        frozen += chosen
    return frozen


def describe_init(loaded: Loaded) -> str:
    """One line: what was loaded, how it was matched, what was adapted or left fresh."""
    parts = [f"{loaded.source} (matched by {loaded.rule}"]
    if loaded.adapted:
        parts.append(f"{', '.join(loaded.adapted)} adapted to the input channels")
    if loaded.fresh:
        parts.append(f"{', '.join(loaded.fresh)} re-initialised for this spec's classes")
    return "; ".join(parts) + ")"
