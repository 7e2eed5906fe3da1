"""Starting from pretrained weights (`--init-from`): torchvision-layout weights onto a spec of
another input and class count, matched, adapted and checked; `--freeze`; torchvision's weights
API offline. Every source here is random weights saved to disk: no download."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

import netbuilder
from conftest import ROOT
from netbuilder.errors import NetbuilderError
from netbuilder.training.checkpoint import load_checkpoint
from netbuilder.training.pretrained import initialise_from, match_state

MNIST_FORM = ROOT / "specs" / "mobilenet_v3_small.yaml"  # 1x32x32, 10 classes


@pytest.fixture(scope="module")
def imagenet_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """torchvision's mobilenet_v3_small (3 channels, 1000 classes), random weights on disk."""
    torch.manual_seed(3)
    state = torchvision.models.mobilenet_v3_small().state_dict()
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v3_small.pth"
    torch.save(state, path)
    return path, state


def test_rgb_imagenet_weights_start_a_grey_ten_class_model(imagenet_weights) -> None:
    path, source = imagenet_weights
    model = netbuilder.build_model(netbuilder.read_spec(MNIST_FORM))
    fresh_head = model.state_dict()["classifier.weight"].clone()
    loaded = initialise_from(model, str(path))
    state = model.state_dict()
    assert loaded.rule == "order"
    assert loaded.adapted == ["stem.conv.weight"]
    assert loaded.fresh == ["classifier.weight", "classifier.bias"]
    torch.testing.assert_close(
        state["stem.conv.weight"], source["features.0.0.weight"].sum(dim=1, keepdim=True)
    )
    assert torch.equal(state["classifier.weight"], fresh_head)  # its own initialisation
    ours, theirs = list(state.values())[1:-2], list(source.values())[1:-2]
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))  # the rest as is


@pytest.mark.slow
def test_fine_tuning_from_a_torchvision_file_end_to_end(imagenet_weights, tmp_path, run_cli):
    path, source = imagenet_weights
    result = run_cli(
        "train",
        str(MNIST_FORM),
        "--init-from",
        str(path),
        "--freeze",
        "stem",
        "--set",
        "train.dataset=synthetic",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    )
    assert result.code == 0, result.err
    assert (
        "initialised from" in result.out and "re-initialised for this spec's classes" in result.out
    )
    weights = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    torch.testing.assert_close(
        weights["stem.conv.weight"],  # frozen: still the adapted source
        source["features.0.0.weight"].sum(dim=1, keepdim=True),
    )
    assert not torch.equal(
        weights["block1.depthwise.conv.weight"], source["features.1.block.0.0.weight"]
    )  # trained


def test_torchvision_weights_come_through_its_own_api_and_cache(
    imagenet_weights, tmp_path, monkeypatch
) -> None:
    path, source = imagenet_weights
    weights = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / Path(weights.url).name).write_bytes(path.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = netbuilder.build_model(netbuilder.read_spec(MNIST_FORM))
    loaded = initialise_from(model, "torchvision:MobileNet_V3_Small_Weights.IMAGENET1K_V1")
    assert loaded.rule == "order"
    assert torch.equal(
        model.state_dict()["block1.se.fc1.weight"], source["features.1.block.1.fc1.weight"]
    )


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("torchvision:NoSuch_Weights.X", "not a torchvision weights name"),
        ("torchvision:MobileNet_V3_Small_Weights", "not a torchvision weights name"),
        ("missing.pth", "no such file"),
    ],
)
def test_a_source_that_is_not_one_is_one_line(
    run_cli, tmp_path, source: str, fragment: str
) -> None:
    result = run_cli(
        "eval",
        str(MNIST_FORM),
        "--init-from",
        str(tmp_path / source) if source.endswith(".pth") else source,
    )
    assert result.code == 2 and fragment in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_weights_of_another_architecture_name_the_first_misfit(tmp_path) -> None:
    torch.save(torchvision.models.mobilenet_v3_large().state_dict(), tmp_path / "large.pth")
    model = netbuilder.build_model(netbuilder.read_spec(MNIST_FORM))
    with pytest.raises(NetbuilderError, match="tensors where the model holds"):
        initialise_from(model, str(tmp_path / "large.pth"))


def test_weights_registered_in_another_order_match_within_each_shape() -> None:
    """ConvNeXt: torchvision registers a block's layer scale before its layers."""
    ours = {
        "conv.weight": torch.zeros(4, 1, 7, 7),
        "conv.bias": torch.zeros(4),
        "scale.weight": torch.zeros(4, 1, 1),
    }
    theirs = {
        "layer_scale": torch.ones(4, 1, 1),
        "block.0.weight": torch.ones(4, 1, 7, 7),
        "block.0.bias": torch.ones(4),
    }
    mapping, rule = match_state(ours, theirs)
    assert rule == "order within each shape"
    assert mapping == {
        "conv.weight": "block.0.weight",
        "conv.bias": "block.0.bias",
        "scale.weight": "layer_scale",
    }


def test_freezing_a_layer_that_does_not_exist_says_which(run_cli, tmp_path) -> None:
    result = run_cli(
        "train",
        str(MNIST_FORM),
        "--freeze",
        "stme",
        "--set",
        "train.dataset=synthetic",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    )
    assert result.code == 2
    assert "no layer with weights is named 'stme'; did you mean 'stem" in result.err
