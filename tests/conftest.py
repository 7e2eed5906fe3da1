"""Shared fixtures: repo paths, the bundled specs, and an in-process CLI runner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from netbuilder.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
MNIST_DIR = ROOT.parent / "shared" / "data"


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


def tiny_spec(name: str = "tiny", head: str | None = "log_softmax", channels: int = 1,
              size: int | list[int] = 16, dropout: float = 0.0,
              train: dict[str, Any] | None = None) -> dict[str, Any]:
    """conv_bn(4) -> maxpool -> conv(num_classes) -> gap -> head: trains in a split second."""
    layers: list[dict[str, Any]] = [
        {"conv_bn": {"out_channels": 4, "padding": 1, "dropout": dropout}},
        {"maxpool": {"kernel_size": 2}},
        {"conv": {"out_channels": "num_classes", "kernel_size": 3, "padding": 1}},
        {"gap": {}},
    ]
    if head:
        layers.append({head: {}})
    defaults = {"dataset": "synthetic", "epochs": 2, "batch_size": 32, "device": "cpu",
                "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                "transforms": {"normalize": {"mean": [0.114], "std": [0.155]}}}
    return {"name": name, "input": {"channels": channels, "size": size}, "num_classes": 10,
            "layers": layers, "train": merged(defaults, train or {})}


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


def compile_layers(spec: Any) -> tuple[Any, list[Any]]:
    """Model and plan of a partial network (a block under test, no classifier head): shape
    inference and assembly without the whole-network checks that `compile_spec` adds."""
    from netbuilder.compiler import assemble, infer_shapes, to_nodes

    plan = infer_shapes(to_nodes(spec), spec.input_shape, spec)
    return assemble(spec.name, plan), plan
