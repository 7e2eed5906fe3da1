"""Parity with torchvision: the gold standard for correctness of the SqueezeNet specs."""

from __future__ import annotations

import pytest
import torch
import torchvision

import netbuilder
from conftest import ROOT

IMAGENET = ["input.channels=3", "input.size=224", "num_classes=1000"]


@pytest.mark.parametrize(
    "spec_name, reference, params",
    [
        ("squeezenet_v10", torchvision.models.squeezenet1_0, 1_248_424),
        ("squeezenet_v11", torchvision.models.squeezenet1_1, 1_235_496),
    ],
)
def test_squeezenet_equals_torchvision(spec_name, reference, params):
    torch.manual_seed(0)
    ours = netbuilder.build_model(
        netbuilder.read_spec(ROOT / "specs" / f"{spec_name}.yaml", IMAGENET)
    ).eval()
    theirs = reference().eval()
    assert sum(p.numel() for p in ours.parameters()) == params
    assert sum(p.numel() for p in theirs.parameters()) == params
    our_state, their_state = ours.state_dict(), theirs.state_dict()
    assert [t.shape for t in our_state.values()] == [t.shape for t in their_state.values()]
    ours.load_state_dict(dict(zip(our_state, their_state.values(), strict=True)))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)


def test_mobilenet_v1_imagenet_parameter_count():
    spec = netbuilder.read_spec(ROOT / "specs" / "mobilenet_v1.yaml", IMAGENET)
    assert sum(p.numel() for p in netbuilder.build_model(spec).parameters()) == 4_231_976


def test_mobilenet_width_multiplier_shrinks_the_net():
    spec = netbuilder.read_spec(
        ROOT / "specs" / "mobilenet_v1.yaml", [*IMAGENET, "params.width=0.5"]
    )
    model = netbuilder.build_model(spec)
    assert model.dw_sep13.pointwise.out_channels == 512
    # the paper's Table 6 lists 1.3M parameters for 0.5 MobileNet-224
    assert 1.3e6 <= sum(p.numel() for p in model.parameters()) < 1.4e6


def copy_into(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Load torchvision's weights in registration order, after checking every shape agrees."""
    our_state, their_state = ours.state_dict(), theirs.state_dict()
    assert [t.shape for t in our_state.values()] == [t.shape for t in their_state.values()]
    ours.load_state_dict(dict(zip(our_state, their_state.values(), strict=True)))


@pytest.mark.parametrize(
    "spec_name, reference, params",
    [
        ("resnet18", torchvision.models.resnet18, 11_689_512),
        ("mobilenet_v2", torchvision.models.mobilenet_v2, 3_504_872),
    ],
)
def test_graph_specs_equal_torchvision(spec_name, reference, params):
    torch.manual_seed(0)
    ours = netbuilder.build_model(netbuilder.read_spec(ROOT / "specs" / f"{spec_name}.yaml"))
    theirs = reference().eval()
    assert isinstance(ours, torch.fx.GraphModule)
    assert sum(p.numel() for p in ours.parameters()) == params
    copy_into(ours, theirs)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs(x), rtol=0, atol=1e-5)


def squeezenet11_with_bypass(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's squeezenet1_1 modules with the paper's simple bypass around fire3, fire5,
    fire7 and fire9 (features[4], [7], [10], [12]) added by hand."""
    f = model.features
    x = f[2](f[1](f[0](x)))
    x = f[3](x)
    x = f[5](f[4](x) + x)
    x = f[6](x)
    x = f[8](f[7](x) + x)
    x = f[9](x)
    x = f[10](x) + x
    x = f[11](x)
    x = f[12](x) + x
    return torch.flatten(model.classifier(x), 1)


def test_squeezenet_bypass_equals_torchvision_with_the_additions():
    torch.manual_seed(0)
    ours = netbuilder.build_model(
        netbuilder.read_spec(ROOT / "specs" / "squeezenet_v11_bypass.yaml", IMAGENET)
    ).eval()
    theirs = torchvision.models.squeezenet1_1().eval()
    assert sum(p.numel() for p in ours.parameters()) == 1_235_496  # the bypass adds none
    copy_into(ours, theirs)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = squeezenet11_with_bypass(theirs, x)
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-5)
        assert not torch.allclose(expected, theirs(x), atol=1e-3)  # the bypass does matter
