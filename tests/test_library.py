"""netbuilder as a library people install: bundled specs by name, create_model and
list_models in timm's shape, a versioned spec format, the version from the package."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import netbuilder
from conftest import ROOT


def test_list_models_is_the_bundled_specs() -> None:
    assert netbuilder.list_models("squeezenet*") == [
        "squeezenet_v10",
        "squeezenet_v11",
        "squeezenet_v11_bypass",
    ]
    assert set(netbuilder.list_models()) == {path.stem for path in (ROOT / "specs").glob("*.yaml")}


def test_create_model_by_name_with_timms_keywords() -> None:
    model = netbuilder.create_model("model5")
    assert sum(p.numel() for p in model.parameters()) == 8_018
    imagenet = netbuilder.create_model(
        "mobilenet_v3_small", num_classes=1000, input_channels=3, input_size=224
    )
    assert sum(p.numel() for p in imagenet.parameters()) == 2_542_856
    wide = netbuilder.create_model(
        ROOT / "specs" / "mobilenet_v1.yaml", input_size=(40, 32), overrides=["params.width=0.5"]
    )
    assert wide.dw_sep13.pointwise.out_channels == 512


def test_create_model_starts_from_pretrained_weights(tmp_path: Path) -> None:
    import torch

    source = netbuilder.create_model("model5")
    torch.save(source.state_dict(), tmp_path / "model5.pth")
    model = netbuilder.create_model("model5", pretrained=str(tmp_path / "model5.pth"))
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), source.state_dict().values(), strict=True)
    )


def test_a_spec_is_found_by_name_from_any_folder(run_cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("build", "squeezenet_v11", "--summary")
    assert result.code == 0 and "Total params: 726,474" in result.out
    result = run_cli("build", "squeezenet_v1")
    assert result.code == 2
    assert result.err.strip() == (
        "squeezenet_v1: error: spec file not found (nor a bundled "
        "spec of that name); did you mean the bundled spec "
        "'squeezenet_v11'?"
    )


def test_a_path_wins_over_a_bundled_name(run_cli, tmp_path, monkeypatch) -> None:
    (tmp_path / "model5.yaml").write_text((ROOT / "specs" / "gap9k.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    assert "9,032 parameters" in run_cli("build", "model5.yaml").out


def test_extends_may_name_a_bundled_spec(tmp_path) -> None:
    (tmp_path / "mine.yaml").write_text(
        "extends: squeezenet_v11\nname: mine\noverride:\n  fire2: {squeeze: 8}\n"
    )
    spec = netbuilder.read_spec(tmp_path / "mine.yaml")
    assert spec.name == "mine" and spec.layers[3].params["squeeze"] == 8


@pytest.mark.parametrize("text", ["netbuilder: 1\n", ""])
def test_the_current_format_and_no_format_read_alike(tmp_path, text: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text + (ROOT / "specs" / "model5.yaml").read_text())

    def layers(spec: netbuilder.Spec) -> list[tuple]:
        return [(layer.name, layer.block, layer.params) for layer in spec.layers]

    assert layers(netbuilder.read_spec(path)) == layers(
        netbuilder.read_spec(ROOT / "specs" / "model5.yaml")
    )


def test_a_format_this_release_does_not_read_is_one_located_line(run_cli, tmp_path) -> None:
    path = tmp_path / "future.yaml"
    path.write_text("netbuilder: 99\n" + (ROOT / "specs" / "model5.yaml").read_text())
    result = run_cli("validate", str(path))
    assert result.code == 2
    assert result.err.strip() == (
        f"{path}:1:13: error: netbuilder: spec format 99 is not one "
        "this release of netbuilder reads; it reads format 1 (the "
        "current one is 1, see CHANGELOG.md)"
    )


def test_the_version_is_the_packages() -> None:
    done = subprocess.run(
        [sys.executable, "cli.py", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == f"netbuilder {version('netbuilder')}"


def test_version_attribute_follows_the_package_metadata() -> None:
    assert netbuilder.__version__ == version("netbuilder")
    assert netbuilder.__version__ in (ROOT / "CHANGELOG.md").read_text()
