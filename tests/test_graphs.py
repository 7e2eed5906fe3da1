"""Graphs: `from:` (names, relative indices, 'input', lists), add and concat, assembly as an
fx GraphModule, and the summary of a graph (inputs, edges, parameters, receptive field)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import fx, nn

import netbuilder
from conftest import ROOT, spec_from_text
from netbuilder.compiler import compile_spec
from netbuilder.compiler.assemble import SpecModel
from netbuilder.report.formatting import format_json, format_table
from netbuilder.report.summary import summarize

HEAD = "name: g\ninput: {channels: 2, size: 8}\nnum_classes: 10\nlayers:\n"


def spec_from(layers: str) -> netbuilder.Spec:
    return spec_from_text(HEAD + layers, "graph.yaml")


RESIDUAL = """\
  - conv_bn: {out_channels: 4, padding: same}
    name: stem
  - conv_bn: {out_channels: 4, padding: same, activation: none}
    name: body
  - add: {}
    from: [body, stem]
  - relu: {}
  - conv: {out_channels: 3, kernel_size: 1}
    name: left
    from: -1
  - conv: {out_channels: 7, kernel_size: 1}
    name: right
    from: -2
  - concat: {}
    from: [left, right]
  - gap: {}
"""


def test_residual_and_concat_compute_what_they_say() -> None:
    torch.manual_seed(0)
    model, plan = compile_spec(spec_from(RESIDUAL))
    assert isinstance(model, fx.GraphModule)
    assert [p.node.inputs for p in plan] == [
        ("input",),
        ("stem",),
        ("body", "stem"),
        ("add1",),
        ("relu1",),
        ("relu1",),
        ("left", "right"),
        ("concat1",),
    ]
    assert [p.out_shape for p in plan][-2:] == [(10, 8, 8), (10,)]
    model.eval()
    x = torch.randn(3, 2, 8, 8)
    stem = model.stem(x)
    merged = torch.relu(model.body(stem) + stem)
    expected = torch.cat([model.left(merged), model.right(merged)], dim=1).mean(dim=(2, 3))
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)


def test_graph_module_keeps_layer_names_and_reads_as_python() -> None:
    model, _ = compile_spec(spec_from(RESIDUAL))
    assert [name for name, _ in model.named_children()] == [
        "stem",
        "body",
        "add1",
        "relu1",
        "left",
        "right",
        "concat1",
        "gap1",
    ]
    assert "stem.conv.weight" in model.state_dict()
    assert "add1 = self.add1(body, stem)" in model.code
    assert model.spec_name == "g"


def test_a_straight_stack_stays_sequential() -> None:
    model, _ = compile_spec(spec_from("  - conv: {out_channels: 10}\n  - gap: {}\n"))
    assert isinstance(model, SpecModel) and isinstance(model, nn.Sequential)


def test_relative_indices_and_input_as_sources() -> None:
    _, plan = compile_spec(
        spec_from("""\
  - conv: {out_channels: 2, padding: 1}
  - add: {}
    from: [-1, input]
  - conv: {out_channels: 10}
  - gap: {}
""")
    )
    assert plan[1].node.inputs == ("conv1", "input")


def test_a_shared_input_is_not_overwritten_in_place() -> None:
    """stem feeds a stand-alone ReLU and the add: the ReLU must not modify stem's output."""
    spec = spec_from("""\
  - conv: {out_channels: 4, padding: 1}
    name: stem
  - relu: {}
    name: act
  - add: {}
    from: [act, stem]
  - conv: {out_channels: 10}
  - gap: {}
""")
    model, _ = compile_spec(spec)
    assert model.act.inplace is False
    x = torch.randn(2, 2, 8, 8)
    stem = model.stem(x)
    expected = model.gap1(model.conv1(torch.relu(stem) + stem))
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)
    straight, _ = compile_spec(
        spec_from("  - conv: {out_channels: 10}\n  - relu: {}\n  - gap: {}\n")
    )
    assert straight.relu1.inplace is True  # nothing else reads conv1


def test_graph_summary_shows_inputs_edges_and_counts_once() -> None:
    spec = spec_from(RESIDUAL)
    model, plan = compile_spec(spec)
    summary = summarize(model, plan, spec)
    assert summary.is_graph
    rows = {row.name: row for row in summary.layers}
    assert rows["add1"].inputs == ("body", "stem") and rows["left"].inputs == ("relu1",)
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    table = format_table(summary)
    assert "Inputs" in table.splitlines()[2]
    assert any(
        line.startswith("add1") and line.rstrip().endswith("body, stem")
        for line in table.splitlines()
    )
    document = json.loads(format_json(summary))
    assert ["stem", "add1"] in document["edges"] and ["right", "concat1"] in document["edges"]
    assert document["layers"][2]["inputs"] == ["body", "stem"]


def test_receptive_field_of_a_merge_is_its_largest_input() -> None:
    """stem (3x3) and deep (three 3x3 after stem) meet in an add: the add continues from deep,
    whose field is 9, not from stem's 3."""
    spec = spec_from("""\
  - conv: {out_channels: 4, padding: same}
    name: stem
  - conv: {out_channels: 4, padding: same}
  - conv: {out_channels: 4, padding: same}
  - conv: {out_channels: 4, padding: same}
    name: deep
  - add: {}
    from: [stem, deep]
  - conv: {out_channels: 10, kernel_size: 1}
  - gap: {}
""")
    model, plan = compile_spec(spec)
    rows = {row.layer: row for row in summarize(model, plan, spec).receptive_field}
    assert rows["stem"].r_out == 3 and rows["deep"].r_out == 9
    assert rows["add1"].r_in == 9 and rows["add1"].r_out == 9


def test_resnet18_summary_matches_the_published_figures() -> None:
    spec = netbuilder.read_spec(ROOT / "specs" / "resnet18.yaml")
    model, plan = compile_spec(spec, device="meta")
    summary = summarize(model, plan, spec)
    assert summary.total_params == 11_689_512
    assert 1.80e9 < summary.total_macs < 1.83e9  # torchvision: 1.81 G multiply-adds
    rows = {row.layer: row for row in summary.receptive_field}
    assert rows["layer4.2.conv2"].r_out == 435  # the last conv, before the global pool
    inputs = {row.name: row.inputs for row in summary.layers}
    assert inputs["layer2.1.add1"] == ("layer2.1.conv2", "layer2.1.downsample")
    assert inputs["layer2.1.downsample"] == ("layer1.2.out",)


@pytest.mark.parametrize(
    "name", ["resnet18", "mobilenet_v2", "squeezenet_v11_bypass", "resnet8_mnist"]
)
def test_graph_specs_trace_to_their_planned_shapes(name: str) -> None:
    spec = netbuilder.read_spec(ROOT / "specs" / f"{name}.yaml")
    model, plan = compile_spec(spec, device="meta")
    summarize(model, plan, spec)  # check_plan_shapes: the real forward agrees with the plan
    assert plan[-1].out_shape == (spec.num_classes,)
