"""`export`: ONNX run by onnxruntime gives PyTorch's outputs (within 1e-4) for the bundled
specs, with the spec, normalisation and class names as metadata; exported programs and
TorchScript load back and compute the same. ONNX tests skip without the optional extra."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml

import netbuilder
from conftest import ROOT, tiny_spec, write_spec
from netbuilder.export import METADATA_FILE
from netbuilder.training.run import run_training

HAVE_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason="the optional export extra is absent")


@pytest.mark.slow
@needs_onnx
@pytest.mark.parametrize("name", ["model5", "squeezenet_v11", "mobilenet_v1", "resnet8_mnist"])
def test_onnxruntime_gives_pytorchs_outputs(run_cli, tmp_path: Path, name: str) -> None:
    import onnxruntime

    out = tmp_path / f"{name}.onnx"
    result = run_cli(
        "export", str(ROOT / "specs" / f"{name}.yaml"), "--format", "onnx", "--out", str(out)
    )
    assert result.code == 0, result.err
    spec = netbuilder.read_spec(ROOT / "specs" / f"{name}.yaml")
    torch.manual_seed(spec.train.seed)  # the export built its weights from this seed
    model = netbuilder.build_model(spec).eval()
    session = onnxruntime.InferenceSession(str(out))
    x = torch.randn(3, *spec.input_shape)  # another batch size than the export's example
    (scores,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(scores), model(x), rtol=0, atol=1e-4)


@pytest.mark.slow
@needs_onnx
def test_onnx_metadata_of_a_trained_checkpoint(run_cli, tmp_path: Path) -> None:
    import onnx

    spec_path = write_spec(tmp_path / "spec.yaml", tiny_spec(train={"epochs": 1}))
    run_training(netbuilder.read_spec(spec_path), tmp_path / "run", progress=False)
    out = tmp_path / "tiny.onnx"
    result = run_cli("export", str(tmp_path / "run" / "best.pt"), "--out", str(out))
    assert result.code == 0 and "trained" in result.out
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["netbuilder.class_names"]) == [str(i) for i in range(10)]
    assert json.loads(props["netbuilder.normalize"])["mean"] == [0.114]
    assert json.loads(props["netbuilder.input_shape"]) == [1, 16, 16]
    assert props["netbuilder.output"] == "log-probabilities"
    assert yaml.safe_load(props["netbuilder.spec"])["name"] == "tiny"


@pytest.mark.parametrize(
    "form, loader",
    [
        ("exported-program", lambda path: torch.export.load(str(path)).module()),
        ("torchscript", lambda path: torch.jit.load(str(path))),
    ],
)
@pytest.mark.slow
def test_exported_program_and_torchscript_load_back(
    run_cli, tmp_path: Path, form: str, loader
) -> None:
    out = tmp_path / ("model.pt2" if form == "exported-program" else "model.pt")
    result = run_cli(
        "export", str(ROOT / "specs" / "resnet8_mnist.yaml"), "--format", form, "--out", str(out)
    )
    assert result.code == 0, result.err
    spec = netbuilder.read_spec(ROOT / "specs" / "resnet8_mnist.yaml")
    torch.manual_seed(spec.train.seed)
    model = netbuilder.build_model(spec).eval()
    x = torch.randn(5, *spec.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(loader(out)(x), model(x), rtol=0, atol=1e-5)


def test_torchscript_carries_the_metadata(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    assert (
        run_cli(
            "export",
            str(ROOT / "specs" / "model5.yaml"),
            "--format",
            "torchscript",
            "--out",
            str(out),
        ).code
        == 0
    )
    files = {METADATA_FILE: ""}
    torch.jit.load(str(out), _extra_files=files)
    meta = json.loads(files[METADATA_FILE])
    assert json.loads(meta["netbuilder.normalize"])["std"] == [0.3081]


def test_export_errors_are_one_line(run_cli, tmp_path: Path) -> None:
    result = run_cli(
        "export", str(ROOT / "specs" / "model5.yaml"), "--out", str(tmp_path / "missing" / "m.onnx")
    )
    assert result.code == 2 and "does not exist" in result.err
    result = run_cli("export", str(tmp_path / "nothing.pt"), "--out", str(tmp_path / "m.onnx"))
    assert result.code == 2 and "checkpoint not found" in result.err


HEAD_TAILS = {
    "log_softmax then dropout": {
        "layers": [{"gap": {}}, {"log_softmax": {}}, {"dropout": {"p": 0.1}}]
    },
    "a macro ending in log_softmax": {
        "blocks": {
            "head": {
                "layers": [
                    {"conv": {"out_channels": "num_classes", "kernel_size": 1}},
                    {"gap": {}},
                    {"log_softmax": {}},
                ]
            }
        },
        "layers": [{"head": {}}],
    },
}


@pytest.mark.slow
@needs_onnx
@pytest.mark.parametrize("tail", sorted(HEAD_TAILS))
def test_onnx_metadata_names_the_head_the_loss_sees(run_cli, tmp_path: Path, tail: str) -> None:
    """Export and training ask the same head rule: log-probabilities, not logits."""
    import onnx

    data = tiny_spec(head=None)
    data["layers"] = data["layers"][:2] + HEAD_TAILS[tail]["layers"]
    data |= {key: value for key, value in HEAD_TAILS[tail].items() if key != "layers"}
    if "blocks" not in data:
        data["layers"].insert(2, {"conv": {"out_channels": "num_classes", "kernel_size": 1}})
    out = tmp_path / "model.onnx"
    result = run_cli("export", str(write_spec(tmp_path / "spec.yaml", data)), "--out", str(out))
    assert result.code == 0, result.err
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["netbuilder.output"] == "log-probabilities"
