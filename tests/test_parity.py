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


# ---------------------------------------------------------------- every torchvision CNN family

models = torchvision.models

FAMILIES = [  # spec, --set, torchvision builder and its kwargs, its weights (published figures)
    (
        "mobilenet_v3_small",
        IMAGENET,
        models.mobilenet_v3_small,
        {},
        models.MobileNet_V3_Small_Weights.IMAGENET1K_V1,
    ),
    (
        "mobilenet_v3_large",
        [],
        models.mobilenet_v3_large,
        {},
        models.MobileNet_V3_Large_Weights.IMAGENET1K_V1,
    ),
    (
        "efficientnet_b0",
        [],
        models.efficientnet_b0,
        {},
        models.EfficientNet_B0_Weights.IMAGENET1K_V1,
    ),
    (
        "efficientnet_b0",
        ["params.depth=1.1", "input.size=240"],
        models.efficientnet_b1,
        {},
        models.EfficientNet_B1_Weights.IMAGENET1K_V1,
    ),
    (
        "efficientnet_b0",
        ["params.width=1.1", "params.depth=1.2", "params.dropout=0.3", "input.size=288"],
        models.efficientnet_b2,
        {},
        models.EfficientNet_B2_Weights.IMAGENET1K_V1,
    ),
    (
        "efficientnet_b0",
        ["params.width=1.2", "params.depth=1.4", "params.dropout=0.3", "input.size=300"],
        models.efficientnet_b3,
        {},
        models.EfficientNet_B3_Weights.IMAGENET1K_V1,
    ),
    (
        "shufflenet_v2",
        ["params.width=0.5"],
        models.shufflenet_v2_x0_5,
        {},
        models.ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1,
    ),
    (
        "shufflenet_v2",
        [],
        models.shufflenet_v2_x1_0,
        {},
        models.ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1,
    ),
    (
        "shufflenet_v2",
        ["params.width=1.5"],
        models.shufflenet_v2_x1_5,
        {},
        models.ShuffleNet_V2_X1_5_Weights.IMAGENET1K_V1,
    ),
    (
        "shufflenet_v2",
        ["params.width=2.0"],
        models.shufflenet_v2_x2_0,
        {},
        models.ShuffleNet_V2_X2_0_Weights.IMAGENET1K_V1,
    ),
    ("regnet_y_400mf", [], models.regnet_y_400mf, {}, models.RegNet_Y_400MF_Weights.IMAGENET1K_V1),
    ("convnext_tiny", [], models.convnext_tiny, {}, models.ConvNeXt_Tiny_Weights.IMAGENET1K_V1),
    ("resnet50", [], models.resnet50, {}, models.ResNet50_Weights.IMAGENET1K_V1),
    (
        "resnet50",
        ["params.groups=32", "params.base_width=4"],
        models.resnext50_32x4d,
        {},
        models.ResNeXt50_32X4D_Weights.IMAGENET1K_V1,
    ),
    (
        "resnet50",
        ["params.base_width=128"],
        models.wide_resnet50_2,
        {},
        models.Wide_ResNet50_2_Weights.IMAGENET1K_V1,
    ),
    ("densenet121", [], models.densenet121, {}, models.DenseNet121_Weights.IMAGENET1K_V1),
    ("mnasnet", [], models.mnasnet1_0, {}, models.MNASNet1_0_Weights.IMAGENET1K_V1),
    (
        "mnasnet",
        ["params.alpha=0.5"],
        models.mnasnet0_5,
        {},
        models.MNASNet0_5_Weights.IMAGENET1K_V1,
    ),
    (
        "googlenet",
        [],
        models.googlenet,
        {"aux_logits": False, "init_weights": True},
        models.GoogLeNet_Weights.IMAGENET1K_V1,
    ),
]


def family_id(case: tuple) -> str:
    return f"{case[0]}[{','.join(s.split('=')[-1] for s in case[1] if 'input' not in s)}]"


@pytest.mark.slow
@pytest.mark.parametrize("case", FAMILIES, ids=[family_id(case) for case in FAMILIES])
def test_every_family_equals_torchvision(case: tuple) -> None:
    """The published parameters and multiply-adds, and torchvision's outputs with its weights
    copied (matched as `--init-from` matches them: by order, or by order within each shape)."""
    from netbuilder.report.summary import summarize_spec
    from netbuilder.training.pretrained import match_state

    name, sets, builder, kwargs, weights = case
    spec = netbuilder.read_spec(ROOT / "specs" / f"{name}.yaml", sets)
    summary = summarize_spec(spec)
    assert summary.total_params == weights.meta["num_params"]
    assert round(summary.total_macs / 1e9, 3) == pytest.approx(weights.meta["_ops"], abs=1e-3)
    torch.manual_seed(0)
    ours, theirs = netbuilder.build_model(spec).eval(), builder(**kwargs).eval()
    mapping, _ = match_state(ours.state_dict(), theirs.state_dict())
    source = theirs.state_dict()
    ours.load_state_dict({key: source[their_key] for key, their_key in mapping.items()})
    x = torch.randn(2, *spec.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=2e-5)
