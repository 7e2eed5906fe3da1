from __future__ import annotations

import pytest
import torch

import netbuilder
from conftest import ROOT, SPECS, compile_layers, spec_from_text
from netbuilder.compiler import compile_spec
from netbuilder.compiler.shapes import resolve_args
from netbuilder.errors import NetbuilderError
from netbuilder.spec.registry import BLOCKS

# The seed projects' published parameter counts: the specs must reproduce them exactly.
SEED_PARAMS = {
    "model1": 14_620,
    "model2": 14_796,
    "model5": 8_018,
    "gap9k": 9_032,
}


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(SEED_PARAMS))
def test_seed_parameter_counts(name: str):
    spec = netbuilder.read_spec(ROOT / "specs" / f"{name}.yaml")
    assert count(netbuilder.build_model(spec)) == SEED_PARAMS[name]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_inferred_shapes_match_a_real_forward_pass(path):
    """Each layer run on the outputs it reads (its `from:`) gives the shape the plan says."""
    spec = netbuilder.read_spec(path)
    model, plan = compile_spec(spec)
    outputs = {"input": torch.zeros(2, *spec.input_shape)}
    model.eval()
    with torch.no_grad():
        for planned in plan:
            name = planned.node.name
            layer = model.get_submodule(name)
            outputs[name] = layer(*(outputs[source] for source in planned.node.inputs))
            assert tuple(outputs[name].shape[1:]) == planned.out_shape, name
        assert model(outputs["input"]).shape == (2, spec.num_classes)


def test_squeezenet_v11_mnist_spatial_sizes():
    _, plan = compile_spec(netbuilder.read_spec(ROOT / "specs" / "squeezenet_v11.yaml"))
    sizes = [plan[0].out_shape[1]] + [p.out_shape[1] for p in plan if p.node.block == "maxpool"]
    assert sizes == [47, 23, 11, 5]


def test_default_layer_names_count_per_block():
    spec = spec_from_text(
        "name: n\ninput: {channels: 1, size: 8}\nnum_classes: 2\nlayers:\n"
        "  - conv: {out_channels: 4}\n  - relu: {}\n  - conv: {out_channels: 2}\n"
        "    name: head\n  - conv: {out_channels: 2, kernel_size: 1}\n  - gap: {}\n"
    )
    names = [name for name, _ in netbuilder.build_model(spec).named_children()]
    assert names == ["conv1", "relu1", "head", "conv2", "gap1"]


def test_num_classes_reference():
    text = (
        "name: n\ninput: {channels: 3, size: 16}\nnum_classes: 7\n"
        "layers:\n  - conv_bn: {out_channels: 32}\n  - dw_sep: {out_channels: 64}\n"
        "  - gap: {}\n  - linear: {out_features: num_classes}\n"
    )
    model, plan = compile_spec(spec_from_text(text))
    assert [p.out_shape[0] for p in plan] == [32, 64, 64, 7]
    assert model.linear1.in_features == 64


def test_resolve_args_fills_num_classes_in_channel_params_only():
    args = resolve_args(BLOCKS.get("conv"), {"out_channels": "num_classes", "kernel_size": 3}, 5)
    assert args == {"out_channels": 5, "kernel_size": 3}


def test_shape_collapse_names_layer_and_shapes():
    text = (
        "name: n\ninput: {channels: 1, size: 4}\nnum_classes: 2\nlayers:\n"
        "  - conv: {out_channels: 4}\n  - conv: {out_channels: 4}\n    name: second\n"
    )
    with pytest.raises(NetbuilderError) as info:
        netbuilder.build_model(spec_from_text(text))
    assert info.value.where == "layers[1] (second)"
    assert info.value.location.line == 6
    assert "2x2 input" in info.value.message


@pytest.mark.parametrize("ceil_mode, expected", [(False, 10), (True, 11)])
def test_ceil_mode_pooling_matches_pytorch(ceil_mode: bool, expected: int):
    text = (
        "name: n\ninput: {channels: 1, size: 22}\nnum_classes: 2\nlayers:\n"
        f"  - maxpool: {{kernel_size: 3, stride: 2, ceil_mode: {str(ceil_mode).lower()}}}\n"
    )
    model, plan = compile_layers(spec_from_text(text))
    assert plan[0].out_shape == (1, expected, expected)
    assert model(torch.zeros(1, 1, 22, 22)).shape[-1] == expected


def test_conv_bn_order_option():
    base = "name: n\ninput: {channels: 1, size: 8}\nnum_classes: 2\nlayers:\n  - conv_bn: "
    default = compile_layers(spec_from_text(base + "{out_channels: 4, dropout: 0.1}\n"))[0]
    swapped = compile_layers(spec_from_text(base + "{out_channels: 4, order: conv_act_bn}\n"))[0]
    assert [n for n, _ in default.conv_bn1.named_children()] == ["conv", "bn", "act", "dropout"]
    assert [n for n, _ in swapped.conv_bn1.named_children()] == ["conv", "act", "bn"]


def test_rectangular_input():
    text = (
        "name: n\ninput: {channels: 1, size: [20, 12]}\nnum_classes: 2\nlayers:\n"
        "  - conv: {out_channels: 4}\n  - maxpool: {}\n"
    )
    _, plan = compile_layers(spec_from_text(text))
    assert plan[-1].out_shape == (4, 9, 5)


def test_flatten_linear_head_with_avgpool_bn_and_softmax():
    text = (
        "name: n\ninput: {channels: 2, size: 8}\nnum_classes: 3\nlayers:\n"
        "  - conv: {out_channels: 4, padding: 1}\n  - bn: {}\n  - avgpool: {kernel_size: 2}\n"
        "  - flatten: {}\n  - bn: {}\n  - linear: {out_features: num_classes}\n"
        "  - softmax: {}\n"
    )
    model, plan = compile_spec(spec_from_text(text))
    assert [p.out_shape for p in plan] == [
        (4, 8, 8),
        (4, 8, 8),
        (4, 4, 4),
        (64,),
        (64,),
        (3,),
        (3,),
    ]
    assert isinstance(model.bn1, torch.nn.BatchNorm2d)
    assert isinstance(model.bn2, torch.nn.BatchNorm1d)
    probabilities = model.eval()(torch.randn(5, 2, 8, 8))
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(5))


def test_fast_dropout_keeps_dropout_semantics():
    from netbuilder.blocks.layers import Dropout

    torch.manual_seed(0)
    layer = Dropout(0.25)
    x = torch.ones(200_000, requires_grad=True)
    y = layer(x)
    zeros = (y == 0).float().mean().item()
    assert abs(zeros - 0.25) < 0.01
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.75))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # gradient is the same mask and scale
    assert torch.equal(layer.eval()(x), x)


def test_fast_dropout_rounds_p_to_16_bits_and_rescales_exactly():
    from netbuilder.blocks.layers import Dropout

    layer = Dropout(0.1)
    x = torch.ones(1_000_003)  # not a multiple of the four draws in a 64-bit word
    torch.manual_seed(1)
    first = layer(x)
    torch.manual_seed(1)
    assert torch.equal(layer(x), first)  # the global generator decides, so resume replays it
    kept = first[first != 0]
    assert torch.allclose(kept, torch.full_like(kept, 65536 / (65536 - 6554)))
    assert abs((first == 0).float().mean().item() - 6554 / 65536) < 0.002
    assert abs(first.mean().item() - 1.0) < 0.005  # expectation preserved
    assert not torch.equal(layer(x), first)
