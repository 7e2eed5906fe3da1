"""Parity with torchvision: the gold standard for correctness of the SqueezeNet specs."""

from __future__ import annotations

import pytest
import torch
import torchvision

import netbuilder
from conftest import ROOT

IMAGENET = ["input.channels=3", "input.size=224", "num_classes=1000"]


@pytest.mark.parametrize("spec_name, reference, params", [
    ("squeezenet_v10", torchvision.models.squeezenet1_0, 1_248_424),
    ("squeezenet_v11", torchvision.models.squeezenet1_1, 1_235_496),
])
def test_squeezenet_equals_torchvision(spec_name, reference, params):
    torch.manual_seed(0)
    ours = netbuilder.build_model(netbuilder.read_spec(ROOT / "specs" / f"{spec_name}.yaml",
                                                       IMAGENET)).eval()
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
    spec = netbuilder.read_spec(ROOT / "specs" / "mobilenet_v1.yaml",
                                [*IMAGENET, "width_multiplier=0.5"])
    model = netbuilder.build_model(spec)
    assert model.dw_sep13.pointwise.out_channels == 512
    # the paper's Table 6 lists 1.3M parameters for 0.5 MobileNet-224
    assert 1.3e6 <= sum(p.numel() for p in model.parameters()) < 1.4e6
