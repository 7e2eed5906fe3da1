"""The formats a model ships in, through PyTorch's own exporters, with what a user of the file needs
to feed it: the spec, the input shape, the normalisation and the class names.

ONNX (viewed in Netron, run by onnxruntime) comes from `torch.onnx.export` (the torch.export
based exporter) with a dynamic batch size and the metadata as model properties; an exported
program from `torch.export`, a TorchScript module from `torch.jit.trace`, both with the metadata
as `netbuilder.json` beside the model. ONNX needs the optional extra: `pip install '.[export]'`.
"""

from __future__ import annotations

import importlib.util
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from .. import __version__
from ..compiler import build_model, compile_spec
from ..compiler.heads import output_kind
from ..compiler.plain import plain_spec
from ..data.files import atomic_write_bytes, check_target, is_checkpoint_path
from ..errors import NetbuilderError
from ..spec import read_spec
from ..spec.datasets import dataset_info
from ..spec.types import Spec

FORMATS = ("onnx", "exported-program", "torchscript")
METADATA_FILE = "netbuilder.json"


@dataclass(frozen=True)
class Exportable:
    """A model in eval mode with what its users need to know."""

    model: nn.Module
    spec: Spec
    mean: list[float] | None
    std: list[float] | None
    class_names: list[str]
    trained: bool


def load_exportable(path: str | Path, overrides: list[str] | None = None) -> Exportable:
    """A checkpoint's trained model, or a spec's freshly initialised one."""
    if not is_checkpoint_path(path):
        return untrained_exportable(read_spec(path, overrides))
    from ..inference import load_trained

    trained = load_trained(path, torch.device("cpu"))
    normalize = trained.config.transforms.normalize
    return Exportable(
        trained.model, trained.spec, normalize.mean, normalize.std, trained.class_names, True
    )


def untrained_exportable(spec: Spec) -> Exportable:
    """A spec's model with the weights its train seed initialises, and its dataset's facts."""
    torch.manual_seed(spec.train.seed)
    info = dataset_info(spec.train.dataset)
    normalize = spec.train.transforms.normalize
    known_mean, known_std = info.known_statistics() or (None, None)
    mean, std = normalize.mean or known_mean, normalize.std or known_std
    names = (
        info.class_names()
        if info.num_classes == spec.num_classes
        else [str(index) for index in range(spec.num_classes)]
    )
    return Exportable(build_model(spec).eval(), spec, mean, std, names, False)


def metadata(item: Exportable) -> dict[str, str]:
    _, plan = compile_spec(item.spec, device="meta")
    return {
        "netbuilder.version": __version__,
        "netbuilder.spec": yaml.safe_dump(plain_spec(item.spec, plan), sort_keys=False),
        "netbuilder.input_shape": json.dumps(list(item.spec.input_shape)),
        "netbuilder.normalize": json.dumps(
            {"mean": item.mean, "std": item.std, "scale": "pixels / 255 first"}
        ),
        "netbuilder.class_names": json.dumps(item.class_names),
        "netbuilder.output": output_kind(plan),
        "netbuilder.trained": json.dumps(item.trained),
    }


def export(item: Exportable, form: str, out: str | Path) -> Path:
    """Write the model to `out`: serialised in memory, then written atomically (a temp file
    renamed over it), so a full disk is one line and no half file, whatever the format."""
    if form not in FORMATS:
        raise NetbuilderError(f"unknown export format '{form}'; expected {', '.join(FORMATS)}")
    out = Path(out)
    check_target(out)  # before the export's work, not after it
    example = torch.zeros(2, *item.spec.input_shape)  # 2: a batch size free to vary
    batch = _batch_dim()
    writer = {"onnx": _onnx, "exported-program": _exported_program, "torchscript": _torchscript}
    atomic_write_bytes(out, writer[form](item, example, batch))
    return out


def require(*modules: str, purpose: str = "--format onnx") -> None:
    """One line naming what is missing from the optional `export` extra."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise NetbuilderError(
            f"{purpose} needs {' and '.join(missing)}: install the "
            "optional extra, pip install -e '.[export]'"
        )


def onnx_model(item: Exportable) -> Any:
    """The fp32 ONNX ModelProto with a dynamic batch size and the metadata as properties."""
    require("onnx", "onnxscript")
    import onnx

    example = torch.zeros(2, *item.spec.input_shape)  # 2: a batch size free to vary
    program = torch.onnx.export(
        item.model,
        (example,),
        dynamo=True,
        input_names=["image"],
        output_names=["scores"],
        dynamic_shapes=({0: _batch_dim()},),
        verbose=False,
    )
    if program is None:  # it returns the program when given no file to write
        raise RuntimeError("torch.onnx.export gave no ONNX program")
    model = program.model_proto
    onnx.helper.set_model_props(model, metadata(item))
    model.doc_string = f"netbuilder spec '{item.spec.name}'"
    return model


def _batch_dim() -> Any:
    return torch.export.Dim("batch", min=1, max=65536)


def _onnx(item: Exportable, example: torch.Tensor, batch: Any) -> bytes:
    return bytes(onnx_model(item).SerializeToString())


def _exported_program(item: Exportable, example: torch.Tensor, batch: Any) -> bytes:
    program = torch.export.export(item.model, (example,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={METADATA_FILE: json.dumps(metadata(item))})
    return buffer.getvalue()


def _torchscript(item: Exportable, example: torch.Tensor, _batch: Any) -> bytes:
    """TorchScript is deprecated by PyTorch (2.14 warns); it stays for runtimes that still
    load it, without the warning. Prefer exported-program."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(item.model, example)  # type: ignore[no-untyped-call]
        torch.jit.save(traced, buffer, _extra_files={METADATA_FILE: json.dumps(metadata(item))})
    return buffer.getvalue()
