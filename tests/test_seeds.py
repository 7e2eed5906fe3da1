"""The bundled seed specs are the seeds' networks, layer for layer (../shared/seeds/).

Each table below is transcribed from a seed document. The GAP nets are written as torchsummary
would print the seed's own nn.Module (for gap9k it is the seed's table, verbatim); netbuilder's
compiled model must produce the same rows: type, output shape and parameters, in call order.
Two modules of netbuilder have a functional counterpart in the seeds' code and are mapped onto
it: `flatten`/`log_softmax` are `x.view`/`F.log_softmax` calls there (no row), and `gap`, which
outputs (C,), is `AdaptiveAvgPool2d(1)` there, with output (C, 1, 1).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from torch import nn

from conftest import ROOT
from netbuilder import compile_spec, read_spec
from netbuilder.report.summary import count_params, leaf_modules

Row = tuple[str, tuple[int, ...], int]  # (module type, one sample's output shape, parameters)

# ../shared/seeds/004, "Parameters": the seed's torchsummary table, as printed.
GAP9K = """
            Conv2d-1            [-1, 8, 26, 26]              72
              ReLU-2            [-1, 8, 26, 26]               0
            Conv2d-3            [-1, 8, 24, 24]             576
              ReLU-4            [-1, 8, 24, 24]               0
         MaxPool2d-5            [-1, 8, 12, 12]               0
            Conv2d-6           [-1, 16, 10, 10]           1,152
              ReLU-7           [-1, 16, 10, 10]               0
            Conv2d-8             [-1, 16, 8, 8]           2,304
              ReLU-9             [-1, 16, 8, 8]               0
        MaxPool2d-10             [-1, 16, 4, 4]               0
           Conv2d-11             [-1, 32, 2, 2]           4,608
             ReLU-12             [-1, 32, 2, 2]               0
           Conv2d-13             [-1, 10, 2, 2]             320
AdaptiveAvgPool2d-14             [-1, 10, 1, 1]               0
"""

# ../shared/seeds/003, "Model 1": 3x3 convs without padding or bias, ReLU, 10% dropout;
# 1 -> 8 | 8 -> 16 -> 24 | transition 24 -> 8 with max-pool | 8 -> 16 -> 24 | output 1x1 24 -> 10
# and 7x7 10 -> 10; 14,620 parameters. Where the seed is silent the rows follow netbuilder's
# choices (the spec's header says so): pool, then a linear 1x1; one dropout after the last 3x3
# conv; ReLU after the output 1x1.
MODEL1 = """
          Conv2d-1     [-1, 8, 26, 26]              72
            ReLU-2     [-1, 8, 26, 26]               0
          Conv2d-3    [-1, 16, 24, 24]           1,152
            ReLU-4    [-1, 16, 24, 24]               0
          Conv2d-5    [-1, 24, 22, 22]           3,456
            ReLU-6    [-1, 24, 22, 22]               0
       MaxPool2d-7    [-1, 24, 11, 11]               0
          Conv2d-8     [-1, 8, 11, 11]             192
          Conv2d-9      [-1, 16, 9, 9]           1,152
           ReLU-10      [-1, 16, 9, 9]               0
         Conv2d-11      [-1, 24, 7, 7]           3,456
           ReLU-12      [-1, 24, 7, 7]               0
        Dropout-13      [-1, 24, 7, 7]               0
         Conv2d-14      [-1, 10, 7, 7]             240
           ReLU-15      [-1, 10, 7, 7]               0
         Conv2d-16      [-1, 10, 1, 1]           4,900
"""

# ../shared/seeds/003, "Model 2": Model 1 with BatchNorm after each of the five 3x3 convs; 14,796.
MODEL2 = """
          Conv2d-1     [-1, 8, 26, 26]              72
     BatchNorm2d-2     [-1, 8, 26, 26]              16
            ReLU-3     [-1, 8, 26, 26]               0
          Conv2d-4    [-1, 16, 24, 24]           1,152
     BatchNorm2d-5    [-1, 16, 24, 24]              32
            ReLU-6    [-1, 16, 24, 24]               0
          Conv2d-7    [-1, 24, 22, 22]           3,456
     BatchNorm2d-8    [-1, 24, 22, 22]              48
            ReLU-9    [-1, 24, 22, 22]               0
      MaxPool2d-10    [-1, 24, 11, 11]               0
         Conv2d-11     [-1, 8, 11, 11]             192
         Conv2d-12      [-1, 16, 9, 9]           1,152
    BatchNorm2d-13      [-1, 16, 9, 9]              32
           ReLU-14      [-1, 16, 9, 9]               0
         Conv2d-15      [-1, 24, 7, 7]           3,456
    BatchNorm2d-16      [-1, 24, 7, 7]              48
           ReLU-17      [-1, 24, 7, 7]               0
        Dropout-18      [-1, 24, 7, 7]               0
         Conv2d-19      [-1, 10, 7, 7]             240
           ReLU-20      [-1, 10, 7, 7]               0
         Conv2d-21      [-1, 10, 1, 1]           4,900
"""

# ../shared/seeds/003, "Model 5": 1 -> 6 | 6 -> 16 -> 20 | transition 20 -> 6 with max-pool |
# 6 -> 16 -> 20 | output 20 -> 10 and global average pooling; BatchNorm after the five 3x3
# convs, no bias, ReLU, 10% dropout; 8,018 parameters. Silent details as in Model 1.
MODEL5 = """
          Conv2d-1     [-1, 6, 26, 26]              54
     BatchNorm2d-2     [-1, 6, 26, 26]              12
            ReLU-3     [-1, 6, 26, 26]               0
          Conv2d-4    [-1, 16, 24, 24]             864
     BatchNorm2d-5    [-1, 16, 24, 24]              32
            ReLU-6    [-1, 16, 24, 24]               0
          Conv2d-7    [-1, 20, 22, 22]           2,880
     BatchNorm2d-8    [-1, 20, 22, 22]              40
            ReLU-9    [-1, 20, 22, 22]               0
      MaxPool2d-10    [-1, 20, 11, 11]               0
         Conv2d-11     [-1, 6, 11, 11]             120
         Conv2d-12      [-1, 16, 9, 9]             864
    BatchNorm2d-13      [-1, 16, 9, 9]              32
           ReLU-14      [-1, 16, 9, 9]               0
         Conv2d-15      [-1, 20, 7, 7]           2,880
    BatchNorm2d-16      [-1, 20, 7, 7]              40
           ReLU-17      [-1, 20, 7, 7]               0
        Dropout-18      [-1, 20, 7, 7]               0
         Conv2d-19      [-1, 10, 7, 7]             200
AdaptiveAvgPool2d-20      [-1, 10, 1, 1]               0
"""

SEED_TABLES = {
    "gap9k": (GAP9K, 9_032),
    "model1": (MODEL1, 14_620),
    "model2": (MODEL2, 14_796),
    "model5": (MODEL5, 8_018),
}
FUNCTIONAL_IN_SEEDS = ("Flatten", "LogSoftmax")  # `x.view(-1, 10)` / `F.log_softmax(x)` there


def parse_torchsummary(text: str) -> list[Row]:
    """Rows of a torchsummary table: `Type-index  [-1, C, H, W]  params`."""
    rows = []
    for line in text.strip().splitlines():
        match = re.fullmatch(r"\s*(\w+)-\d+\s+\[-1, ([\d, ]+)\]\s+([\d,]+)", line)
        assert match, f"not a torchsummary row: {line!r}"
        shape = tuple(int(d) for d in match.group(2).split(","))
        rows.append((match.group(1), shape, int(match.group(3).replace(",", ""))))
    return rows


def traced_rows(model: nn.Module, input_shape: tuple[int, ...]) -> list[Row]:
    """Every leaf module call of one forward pass, in order, as torchsummary would list it."""
    rows: list[Row] = []

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        rows.append((type(module).__name__, tuple(output.shape[1:]), count_params(module)[0]))

    handles = [module.register_forward_hook(hook) for _, module in leaf_modules(model)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    for handle in handles:
        handle.remove()
    return rows


def in_seed_terms(rows: list[Row]) -> list[Row]:
    """netbuilder's rows as the seeds' modules show them (see the module docstring)."""
    mapped = []
    for kind, shape, params in rows:
        if kind in FUNCTIONAL_IN_SEEDS:
            continue
        if kind == "GlobalAvgPool":
            kind, shape = "AdaptiveAvgPool2d", (*shape, 1, 1)
        mapped.append((kind, shape, params))
    return mapped


@pytest.mark.parametrize("name", sorted(SEED_TABLES))
def test_gap_net_is_the_seed_layer_for_layer(name: str) -> None:
    table, total = SEED_TABLES[name]
    spec = read_spec(ROOT / "specs" / f"{name}.yaml")
    model, _ = compile_spec(spec)
    expected = parse_torchsummary(table)
    assert sum(params for _, _, params in expected) == total  # the transcription adds up
    assert in_seed_terms(traced_rows(model, spec.input_shape)) == expected
    assert sum(p.numel() for p in model.parameters()) == total


def test_gap9k_prints_the_seed_memory_lines(run_cli) -> None:
    """../shared/seeds/004 ends its table with these four lines."""
    out = run_cli("build", str(ROOT / "specs" / "gap9k.yaml"), "--summary").out
    assert (
        "Input size (MB): 0.00\nForward/backward pass size (MB): 0.21\n"
        "Params size (MB): 0.03\nEstimated Total Size (MB): 0.24"
    ) in out


def dw_sep_params(cin: int, cout: int) -> int:
    """The seed's count, 3*3*Cin + 1*1*Cin*Cout, plus BatchNorm's scale and shift."""
    return 3 * 3 * cin + cin * cout + 2 * (cin + cout)


# ../shared/seeds/002, "Network Configuration (Custom)": (type, stride, output size); the
# channels are the paper's Table 1 (the seed builds "the MobileNet V1 architecture").
MOBILENET = [
    ("conv", 1, 32, 32),
    ("dw", 1, 32, 64),
    ("dw", 2, 16, 128),
    ("dw", 1, 16, 128),
    ("dw", 2, 8, 256),
    ("dw", 1, 8, 256),
    ("dw", 2, 4, 512),
    *[("dw", 1, 4, 512)] * 5,
    ("dw", 2, 2, 1024),
    ("dw", 2, 1, 1024),
]


def test_mobilenet_v1_follows_the_seed_stride_table() -> None:
    spec = read_spec(ROOT / "specs" / "mobilenet_v1.yaml")
    _, plan = compile_spec(spec)
    *convs, gap, fc = plan
    assert (gap.node.block, fc.node.block, fc.out_shape) == ("gap", "linear", (10,))
    channels = 1
    for planned, (kind, stride, size, width) in zip(convs, MOBILENET, strict=True):
        assert planned.node.block == {"conv": "conv_bn", "dw": "dw_sep"}[kind]
        assert (planned.args["stride"], planned.out_shape) == (stride, (width, size, size))
        params = (
            9 * channels * width + 2 * width if kind == "conv" else dw_sep_params(channels, width)
        )
        assert count_params(planned.block.module)[0] == params
        channels = width


# ../shared/seeds/001, the torchvision-like `SqueezeNet` (v1.0): (block, parameters) in order.
SQUEEZENET_V10 = [
    ("conv", {"out_channels": 96, "kernel_size": 7, "stride": 2}),
    ("relu", {}),
    ("maxpool", {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ("fire", {"squeeze": 16, "expand1x1": 64, "expand3x3": 64}),
    ("fire", {"squeeze": 16, "expand1x1": 64, "expand3x3": 64}),
    ("fire", {"squeeze": 32, "expand1x1": 128, "expand3x3": 128}),
    ("maxpool", {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ("fire", {"squeeze": 32, "expand1x1": 128, "expand3x3": 128}),
    ("fire", {"squeeze": 48, "expand1x1": 192, "expand3x3": 192}),
    ("fire", {"squeeze": 48, "expand1x1": 192, "expand3x3": 192}),
    ("fire", {"squeeze": 64, "expand1x1": 256, "expand3x3": 256}),
    ("maxpool", {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ("fire", {"squeeze": 64, "expand1x1": 256, "expand3x3": 256}),
    ("dropout", {"p": 0.5}),
    ("conv", {"out_channels": 10, "kernel_size": 1}),
    ("relu", {}),
    ("gap", {}),
]

# ../shared/seeds/000, "Model Configuration": output sizes at 96x96 (the fire rows are the sizes
# the fires keep); conv10 + GAP give the 10 class scores.
SQUEEZENET_V11_SIZES = {
    "conv1": 47,
    "maxpool1": 23,
    "fire2": 23,
    "fire3": 23,
    "maxpool2": 11,
    "fire4": 11,
    "fire5": 11,
    "maxpool3": 5,
    "fire6": 5,
    "fire7": 5,
    "fire8": 5,
    "fire9": 5,
    "conv10": 5,
}


def test_squeezenet_v10_is_the_seed_implementation() -> None:
    _, plan = compile_spec(read_spec(ROOT / "specs" / "squeezenet_v10.yaml"))
    assert len(plan) == len(SQUEEZENET_V10)
    for planned, (block, params) in zip(plan, SQUEEZENET_V10, strict=True):
        assert planned.node.block == block
        assert {key: planned.args.get(key) for key in params} == params, planned.node.name


def test_squeezenet_v11_keeps_the_seed_sizes() -> None:
    spec = read_spec(ROOT / "specs" / "squeezenet_v11.yaml")
    _, plan = compile_spec(spec)
    sizes = {p.node.name: p.out_shape[1] for p in plan if len(p.out_shape) == 3}
    assert {name: sizes[name] for name in SQUEEZENET_V11_SIZES} == SQUEEZENET_V11_SIZES
    assert spec.input_shape == (1, 96, 96) and plan[-1].out_shape == (10,)


def test_model5_family_at_model5s_values_is_model5() -> None:
    """The searched family is the seed's Model 5 with its widths, dropout and rate as params:
    at the seed's values (6, 16, 20, 10% dropout) it is model5 layer for layer, 8,018 params."""
    seed = read_spec(ROOT / "specs" / "model5.yaml")
    family = read_spec(
        ROOT / "specs" / "model5_family.yaml",
        ["params.mid=16", "params.wide=20", "params.squeeze=6", "params.dropout=0.1"],
    )
    seed_model, seed_plan = compile_spec(seed, device="meta")
    model, plan = compile_spec(family, device="meta")
    assert [(p.node.name, p.node.block, p.out_shape) for p in plan] == [
        (p.node.name, p.node.block, p.out_shape) for p in seed_plan
    ]
    assert str(model) == str(seed_model)
    assert count_params(model)[0] == count_params(seed_model)[0] == 8018
