"""What many tests share, in one place: repo paths and the bundled specs, an in-process CLI
runner, specs from text or data (`spec_from_text`, `tiny_spec`, `write_spec`), and data folders
made on the spot (IDX files of a fake MNIST, PNG files, an ImageFolder of shapes)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from netbuilder.cli import main
from netbuilder.data.loader import ImageDataset
from netbuilder.spec import Spec, resolve, validate
from netbuilder.spec.document import parse_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
MNIST_DIR = ROOT.parent / "shared" / "data"
SHAPES = ("circle", "cross", "stripes")  # the classes of `image_folder`


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run `netbuilder ARGS...` in-process and capture exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def tiny_spec(
    name: str = "tiny",
    head: str | None = "log_softmax",
    channels: int = 1,
    size: int | list[int] = 16,
    dropout: float = 0.0,
    train: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """conv_bn(4) -> maxpool -> conv(num_classes) -> gap -> head: trains in a split second."""
    layers: list[dict[str, Any]] = [
        {"conv_bn": {"out_channels": 4, "padding": 1, "dropout": dropout}},
        {"maxpool": {"kernel_size": 2}},
        {"conv": {"out_channels": "num_classes", "kernel_size": 3, "padding": 1}},
        {"gap": {}},
    ]
    if head:
        layers.append({head: {}})
    defaults = {
        "dataset": "synthetic",
        "epochs": 2,
        "batch_size": 32,
        "device": "cpu",
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "transforms": {"normalize": {"mean": [0.114], "std": [0.155]}},
    }
    return {
        "name": name,
        "input": {"channels": channels, "size": size},
        "num_classes": 10,
        "layers": layers,
        "train": merged(defaults, train or {}),
    }


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override` on top, nested mappings merged."""
    out = dict(base)
    for key, value in override.items():
        both_maps = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if both_maps else value
    return out


def write_spec(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def spec_from_text(text: str, source: str = "test.yaml") -> Spec:
    """A spec read from YAML text as `read_spec` reads a file: resolved, then validated."""
    return validate(resolve(parse_spec(text, source)))


# ---------------------------------------------------------------- data folders


def write_idx(path: Path, data: torch.Tensor) -> None:
    """Write a uint8 tensor as an IDX file: magic 0x08nn big-endian, dims, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 + data.dim()) + struct.pack(f">{data.dim()}I", *data.shape)
    path.write_bytes(header + data.numpy().tobytes())


def make_fake_split(raw: Path, prefix: str, count: int, seed: int) -> ImageDataset:
    """Random 28x28 images and labels written in torchvision's file names; returned for checks."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 28, 28), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, 10, (count,), generator=generator, dtype=torch.uint8)
    write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
    write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return ImageDataset(images.unsqueeze(1), labels.long(), [str(i) for i in range(10)])


def write_fake_dataset(
    root: Path, folder: str, train: int = 5, test: int = 3
) -> dict[bool, ImageDataset]:
    """Both splits of a fake dataset (random images) under root/folder/raw."""
    raw = root / folder / "raw"
    return {
        True: make_fake_split(raw, "train", train, 0),
        False: make_fake_split(raw, "t10k", test, 1),
    }


def write_png(image: torch.Tensor, path: Path) -> None:
    """A uint8 (C, H, W) tensor as a grey or RGB PNG."""
    array = image.permute(1, 2, 0).numpy()
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)


def draw(kind: str, index: int, size: int = 20) -> np.ndarray:
    """A grey picture of `kind` (one of SHAPES), shifted a little with `index`."""
    ys, xs = np.mgrid[:size, :size]
    shift = index % 4 - 2
    if kind == "circle":
        mask = (ys - 10 - shift) ** 2 + (xs - 10) ** 2 < 36
    elif kind == "cross":
        mask = (abs(ys - 10 - shift) < 2) | (abs(xs - 10 + shift) < 2)
    else:
        mask = (xs + shift) % 6 < 3
    noise = np.random.default_rng(index).integers(0, 40, (size, size))
    return (mask * 200 + noise).astype(np.uint8)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """train/ (12 per class) and val/ (4 per class) of grey PNGs; one is 16-bit, one RGB."""
    for split, count in (("train", 12), ("val", 4)):
        for kind in SHAPES:
            folder = tmp_path / "shapes" / split / kind
            folder.mkdir(parents=True)
            for index in range(count):
                Image.fromarray(draw(kind, index + (100 if split == "val" else 0))).save(
                    folder / f"{index}.png"
                )
    wide = draw("circle", 7).astype(np.uint16) * 257
    Image.fromarray(wide).save(tmp_path / "shapes" / "train" / "circle" / "wide.png")
    Image.fromarray(np.stack([draw("cross", 8)] * 3, axis=2)).save(
        tmp_path / "shapes" / "train" / "cross" / "rgb.png"
    )
    return tmp_path / "shapes"


def compile_layers(spec: Any) -> tuple[Any, list[Any]]:
    """Model and plan of a partial network (a block under test, no classifier head): shape
    inference and assembly without the whole-network checks that `compile_spec` adds."""
    from netbuilder.compiler.assemble import assemble
    from netbuilder.compiler.shapes import infer_shapes, to_nodes

    plan = infer_shapes(to_nodes(spec), spec.input_shape, spec)
    return assemble(spec.name, plan), plan
