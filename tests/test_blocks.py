"""The block vocabulary: activations, padding 'same'/'valid', [height, width] kernels, strides,
padding and dilation, grouped conv_bn with its BatchNorm settings, dw_sep padding and depth
multiplier, global max pooling, adaptive average pooling, dropout2d, Xavier init. Each planned
shape is checked against a real forward pass of the block."""

from __future__ import annotations

import itertools
from typing import get_args

import pytest
import torch
from torch import nn

from conftest import compile_layers, spec_from_text
from netbuilder.blocks.activations import ActivationName, activation_layer
from netbuilder.blocks.base import output_size
from netbuilder.errors import NetbuilderError
from netbuilder.report.summary import trace_forward


def plan_of(input_line: str, layers: str):
    spec = spec_from_text(
        f"name: b\ninput: {input_line}\nnum_classes: 10\nlayers:\n{layers}", "blocks.yaml"
    )
    model, plan = compile_layers(spec)
    x = torch.randn(2, *spec.input_shape)
    with torch.no_grad():
        assert tuple(model.eval()(x).shape[1:]) == plan[-1].out_shape  # the plan is right
    return model, plan


EXPECTED = {
    "relu": torch.relu,
    "relu6": lambda x: x.clamp(0, 6),
    "gelu": nn.functional.gelu,
    "leaky_relu": lambda x: nn.functional.leaky_relu(x, 0.2),
    "elu": nn.functional.elu,
    "silu": nn.functional.silu,
    "hardswish": nn.functional.hardswish,
    "hardsigmoid": nn.functional.hardsigmoid,
    "mish": nn.functional.mish,
    "softplus": nn.functional.softplus,
    "prelu": lambda x: nn.functional.leaky_relu(x, 0.25),  # PReLU's first slope
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


@pytest.mark.parametrize("name", [n for n in get_args(ActivationName) if n != "none"])
def test_every_activation_by_name(name: str) -> None:
    model, _ = plan_of(
        "{channels: 2, size: 4}", f"  - activation: {{function: {name}, negative_slope: 0.2}}\n"
    )
    x = torch.randn(3, 2, 4, 4) * 4
    torch.testing.assert_close(model(x.clone()), EXPECTED[name](x))


def test_activation_parameter_of_conv_blocks_and_linear() -> None:
    model, _ = plan_of(
        "{channels: 2, size: 6}",
        "  - conv: {out_channels: 3, activation: tanh}\n"
        "  - conv_bn: {out_channels: 3, activation: silu}\n"
        "  - dw_sep: {out_channels: 4, activation: hardswish}\n"
        "  - gap: {}\n  - linear: {out_features: 5, activation: sigmoid}\n",
    )
    assert isinstance(model.conv1.act, nn.Tanh) and isinstance(model.conv_bn1.act, nn.SiLU)
    assert isinstance(model.dw_sep1.act2, nn.Hardswish)
    assert isinstance(model.linear1.act, nn.Sigmoid)
    assert activation_layer("none") is None


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        ("conv: {out_channels: 4, kernel_size: 5, padding: same}", (4, 9, 9)),
        ("conv: {out_channels: 4, kernel_size: 3, stride: 2, padding: same}", (4, 5, 5)),
        ("conv: {out_channels: 4, kernel_size: 3, padding: valid}", (4, 7, 7)),
        ("conv: {out_channels: 4, kernel_size: [1, 7], padding: [0, 3]}", (4, 9, 9)),
        ("conv: {out_channels: 4, kernel_size: [3, 1], stride: [2, 1]}", (4, 4, 9)),
        ("conv: {out_channels: 4, kernel_size: 3, dilation: 2, padding: same}", (4, 9, 9)),
        ("conv: {out_channels: 4, kernel_size: 3, dilation: [2, 1]}", (4, 5, 7)),
        ("maxpool: {kernel_size: [3, 1], stride: [2, 1], padding: [1, 0]}", (2, 5, 9)),
        ("avgpool: {kernel_size: 3, stride: 2, ceil_mode: true}", (2, 4, 4)),
    ],
)
def test_geometry_as_numbers_pairs_same_and_valid(layer: str, shape: tuple) -> None:
    _, plan = plan_of("{channels: 2, size: 9}", f"  - {layer}\n")
    assert plan[0].out_shape == shape


def test_receptive_field_window_uses_the_dilated_kernel() -> None:
    _, plan = plan_of(
        "{channels: 1, size: 9}", "  - conv: {out_channels: 1, kernel_size: 3, dilation: 3}\n"
    )
    assert plan[0].block.window.kernel == 7


def test_conv_bn_groups_and_batchnorm_settings() -> None:
    model, _ = plan_of(
        "{channels: 4, size: 6}",
        "  - conv_bn: {out_channels: 8, groups: 4, padding: 1, bn_eps: 0.001, bn_momentum: 0.01}\n",
    )
    block = model.conv_bn1
    assert block.conv.groups == 4 and block.conv.weight.shape == (8, 1, 3, 3)
    assert (block.bn.eps, block.bn.momentum) == (0.001, 0.01)


def test_dw_sep_padding_and_depth_multiplier() -> None:
    model, plan = plan_of(
        "{channels: 3, size: 8}",
        "  - dw_sep: {out_channels: 5, depth_multiplier: 2, padding: valid}\n",
    )
    assert model.dw_sep1.depthwise.weight.shape == (6, 1, 3, 3)
    assert model.dw_sep1.pointwise.weight.shape == (5, 6, 1, 1)
    assert plan[0].out_shape == (5, 6, 6)


def test_global_max_and_adaptive_average_pooling() -> None:
    model, plan = plan_of("{channels: 3, size: [8, 6]}", "  - global_maxpool: {}\n")
    x = torch.randn(2, 3, 8, 6)
    torch.testing.assert_close(model(x), x.amax(dim=(2, 3)))
    _, plan = plan_of("{channels: 3, size: [8, 6]}", "  - adaptive_avgpool: {size: [2, 3]}\n")
    assert plan[0].out_shape == (3, 2, 3)


def test_dropout2d_zeroes_whole_channels_in_training_only() -> None:
    model, _ = plan_of("{channels: 64, size: 4}", "  - dropout2d: {p: 0.5}\n")
    x = torch.ones(2, 64, 4, 4)
    torch.manual_seed(0)
    out = model.train()(x)
    per_channel = out.flatten(2)
    assert ((per_channel == 0).all(dim=2) | (per_channel != 0).all(dim=2)).all()
    assert 0 < (per_channel == 0).all(dim=2).float().mean() < 1
    assert torch.equal(model.eval()(x), x)
    with pytest.raises(NetbuilderError, match="dropout2d drops channels"):
        plan_of("{channels: 2, size: 4}", "  - gap: {}\n  - dropout2d: {}\n")


@pytest.mark.parametrize("init", ["xavier_uniform", "xavier_normal"])
def test_xavier_initialisation(init: str) -> None:
    torch.manual_seed(0)
    model, _ = plan_of(
        "{channels: 64, size: 4}", f"  - conv: {{out_channels: 64, kernel_size: 1, init: {init}}}\n"
    )
    weight = model.conv1.weight
    assert abs(weight.std().item() - (2 / (64 + 64)) ** 0.5) < 0.02  # Glorot's variance
    assert torch.equal(model.conv1.bias, torch.zeros(64))


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_output_sizes_follow_pytorch(ceil_mode: bool) -> None:
    """Every small case, against PyTorch's own pooling (a window larger than the input
    included: ceil mode gives one output where floor mode has none)."""
    for size, kernel, stride in itertools.product(range(1, 9), range(1, 6), range(1, 4)):
        for padding in range(kernel // 2 + 1):
            ours = output_size(size, kernel, stride, padding, ceil_mode=ceil_mode)
            pool = torch.nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
            try:
                theirs = pool(torch.zeros(1, 1, size, size)).shape[-1]
            except RuntimeError:  # PyTorch refuses an output smaller than 1
                theirs = 0
            assert max(ours, 0) == theirs, (size, kernel, stride, padding)


def test_a_ceil_mode_pool_larger_than_its_input_gives_one_output() -> None:
    _, plan = plan_of(
        "{channels: 2, size: 2}", "  - maxpool: {kernel_size: 3, stride: 2, ceil_mode: true}\n"
    )
    assert plan[-1].out_shape == (2, 1, 1)


# ---------------------------------------------------------------- today's compact CNNs' blocks


def test_squeeze_excite_is_torchvisions_with_its_names() -> None:
    from torchvision.ops import SqueezeExcitation

    _, plan = plan_of(
        "{channels: 16, size: 8}", "  - squeeze_excite: {squeeze_channels: 4, gate: hardsigmoid}\n"
    )
    ours = plan[0].block.module
    theirs = SqueezeExcitation(16, 4, scale_activation=torch.nn.Hardsigmoid)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(ours(x), theirs(x))


def test_mul_broadcasts_a_gate_over_a_map_and_names_misfits() -> None:
    layers = (
        "  - conv: {out_channels: 4, padding: 1}\n    name: map\n"
        "  - adaptive_avgpool: {size: 1}\n    name: gate\n"
        "  - mul: {}\n    from: [map, gate]\n"
    )
    model, plan = plan_of("{channels: 2, size: 8}", layers)
    assert plan[-1].out_shape == (4, 8, 8)
    x = torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        y = model.map(x)
        torch.testing.assert_close(model(x), y * y.mean(dim=(2, 3), keepdim=True))
    bad = layers.replace("size: 1", "size: 2")
    with pytest.raises(
        NetbuilderError, match="mul needs each dim equal or 1: map gives 4x8x8, gate gives 4x2x2"
    ):
        plan_of("{channels: 2, size: 8}", bad)


def test_chunk_and_channel_shuffle_are_shufflenets() -> None:
    from torchvision.models.shufflenetv2 import channel_shuffle as theirs

    model, _ = plan_of(
        "{channels: 6, size: 4}",
        "  - chunk: {chunks: 2, index: 1}\n  - channel_shuffle: {groups: 3}\n",
    )
    x = torch.randn(2, 6, 4, 4)
    torch.testing.assert_close(model(x), theirs(x.chunk(2, dim=1)[1], 3))
    with pytest.raises(NetbuilderError, match="6 channels do not cut into 4 equal parts"):
        plan_of("{channels: 6, size: 4}", "  - chunk: {chunks: 4, index: 0}\n")
    with pytest.raises(NetbuilderError, match="index 2 is not one of the 2 parts"):
        plan_of("{channels: 6, size: 4}", "  - chunk: {chunks: 2, index: 2}\n")


def test_layer_norm_pixel_linear_and_layer_scale_are_convnexts() -> None:
    from torchvision.models.convnext import LayerNorm2d

    model, plan = plan_of(
        "{channels: 4, size: 3}",
        "  - layer_norm: {eps: 1e-6}\n  - pixel_linear: {out_features: 8}\n"
        "  - layer_scale: {init: 0.5}\n",
    )
    _, linear, scale = (p.block.module for p in plan)
    reference = LayerNorm2d(4, eps=1e-6)
    assert linear.weight.shape == (8, 4) and scale.weight.shape == (8, 1, 1)
    x = torch.randn(2, 4, 3, 3)
    conv = torch.nn.functional.conv2d(reference(x), linear.weight[:, :, None, None], linear.bias)
    torch.testing.assert_close(model(x), 0.5 * conv)
    trace = trace_forward(model, (4, 3, 3))
    assert sum(trace.macs.values()) == 8 * 4 * 3 * 3  # the per-pixel linear, as a 1x1 conv


def test_stochastic_depth_drops_whole_samples_in_training_only() -> None:
    model, _ = plan_of("{channels: 4, size: 3}", "  - stochastic_depth: {p: 0.5}\n")
    x = torch.ones(64, 4, 3, 3)
    torch.testing.assert_close(model.eval()(x), x)
    kept = model.train()(x).flatten(1)
    assert set(kept.unique().tolist()) <= {0.0, 2.0}
    assert ((kept == 0).all(dim=1) | (kept == 2).all(dim=1)).all()  # whole samples
