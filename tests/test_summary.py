"""Tests for netbuilder.summary and netbuilder.formatting.

Golden outputs: the table reports of a few specs are stored in tests/golden/*.txt and compared
verbatim. After an intended change to the report, regenerate them with

    NETBUILDER_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_summary.py

and review the diff of tests/golden/ before committing.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from conftest import compile_layers, spec_from_text
from netbuilder import compile_spec, read_spec
from netbuilder.errors import NetbuilderError
from netbuilder.report.formatting import format_json, format_table
from netbuilder.report.summary import Summary, summarize, trace_forward
from netbuilder.spec.types import Spec

REPO_ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO_ROOT / "specs").glob("*.yaml"))
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("NETBUILDER_UPDATE_GOLDEN") == "1"
MB = 1024**2
DEEP = 10  # a depth below every block's innermost module


def tiny_spec(input_line: str, layers: str) -> Spec:
    return spec_from_text(f"name: tiny\ninput: {input_line}\nnum_classes: 10\nlayers:\n{layers}")


def summary_of(spec: Spec, depth: int = 1) -> Summary:
    model, plan = compile_layers(spec)
    return summarize(model, plan, spec, depth)


@pytest.fixture(params=SPECS, ids=[p.stem for p in SPECS])
def compiled(request: pytest.FixtureRequest):
    spec = read_spec(request.param)
    model, plan = compile_spec(spec)
    return spec, model, plan


# ---- every spec ---------------------------------------------------------------------------


def test_total_params_match_model(compiled) -> None:
    spec, model, plan = compiled
    summary = summarize(model, plan, spec)
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    assert summary.trainable_params + summary.non_trainable_params == summary.total_params
    assert sum(row.params for row in summary.layers) == summary.total_params


def test_deeper_summary_keeps_totals(compiled) -> None:
    spec, model, plan = compiled
    shallow, deep = summarize(model, plan, spec, 1), summarize(model, plan, spec, 2)
    for field in (
        "total_params",
        "trainable_params",
        "non_trainable_params",
        "total_macs",
        "memory",
    ):
        assert getattr(deep, field) == getattr(shallow, field), field
    assert [r for r in deep.layers if r.depth == 1] == list(shallow.layers)


def test_leaf_rows_add_up_to_totals(compiled) -> None:
    """Rows nest, so only rows with nothing listed below them may be summed."""
    spec, model, plan = compiled
    summary = summarize(model, plan, spec, DEEP)
    names = [row.name for row in summary.layers]
    leaves = [r for r in summary.layers if not any(n.startswith(r.name + ".") for n in names)]
    assert sum(r.params for r in leaves) == summary.total_params
    assert sum(r.macs for r in leaves) == summary.total_macs
    assert sum(r.macs for r in summary.layers if r.depth == 1) == summary.total_macs


def test_hooked_shapes_equal_plan_shapes(compiled) -> None:
    spec, model, plan = compiled
    shapes = trace_forward(model, spec.input_shape).shapes
    for planned in plan:
        assert shapes[planned.node.name] == planned.out_shape, planned.node.name
    rows = summarize(model, plan, spec).layers
    assert [r.output_shape for r in rows] == [p.out_shape for p in plan]
    assert [r.type for r in rows] == [p.node.block for p in plan]


def test_receptive_field_sizes_follow_plan(compiled) -> None:
    spec, model, plan = compiled
    summary = summarize(model, plan, spec)
    spatial = [p for p in plan if len(p.in_shape) == 3]
    rows = summary.receptive_field
    assert [r.layer for r in rows] == [p.node.name for p in spatial]
    assert rows[0].n_in == spec.input_shape[1]
    for row, planned in zip(rows, spatial, strict=True):
        if len(planned.out_shape) == 3:
            assert row.n_out == planned.out_shape[1]
    after_layer = {"input": (spec.input_shape[1], 1, 1, 0.5)}
    for row, planned in zip(rows, spatial, strict=True):
        continued_from = max((after_layer[s] for s in planned.node.inputs), key=lambda v: v[2])
        assert (row.n_in, row.j_in, row.r_in, row.start_in) == continued_from
        after_layer[row.layer] = (row.n_out, row.j_out, row.r_out, row.start)
    assert summary.final_receptive_field == rows[-1].r_out


def test_json_has_required_keys(compiled) -> None:
    spec, model, plan = compiled
    summary = summarize(model, plan, spec, 2)
    document = json.loads(format_json(summary))
    assert {
        "name",
        "input_shape",
        "output_shape",
        "total_params",
        "trainable_params",
        "non_trainable_params",
        "total_macs",
        "memory_mb",
        "layers",
        "receptive_field",
        "final_receptive_field",
    } <= set(document)
    assert set(document["memory_mb"]) == {"input", "forward_backward", "params", "total"}
    assert document["name"] == spec.name
    assert document["input_shape"] == list(spec.input_shape)
    assert document["output_shape"] == list(plan[-1].out_shape)
    assert document["total_params"] == summary.total_params
    assert len(document["layers"]) == len(summary.layers)
    for layer, row in zip(document["layers"], summary.layers, strict=True):
        assert {"name", "type", "output_shape", "params", "macs", "depth"} <= set(layer)
        assert layer["output_shape"] == list(row.output_shape)
    for row in document["receptive_field"]:
        assert {"layer", "n_in", "n_out", "j_in", "j_out", "r_in", "r_out", "start"} <= set(row)
    assert document["final_receptive_field"] == summary.final_receptive_field


def test_table_renders(compiled) -> None:
    spec, model, plan = compiled
    text = format_table(summarize(model, plan, spec, 2))
    assert f"Total params: {sum(p.numel() for p in model.parameters()):,}" in text
    assert "Estimated Total Size (MB): " in text
    for planned in plan:
        assert planned.node.name in text


# ---- summarize: behaviour -----------------------------------------------------------------


def test_summary_restores_each_module_mode_and_running_stats() -> None:
    spec = read_spec(REPO_ROOT / "specs" / "model5.yaml")
    model, plan = compile_spec(spec)
    model.train()
    model.conv2.eval()
    modes = {name: m.training for name, m in model.named_modules()}
    stats = model.conv1.bn.running_mean.clone()
    summarize(model, plan, spec)
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert torch.equal(model.conv1.bn.running_mean, stats)
    assert model.conv1.bn.num_batches_tracked.item() == 0


def test_summary_rejects_a_builder_with_a_wrong_shape() -> None:
    spec = read_spec(REPO_ROOT / "specs" / "model5.yaml")
    model, plan = compile_spec(spec)
    plan[1].block.shape = (16, 25, 25)
    with pytest.raises(
        NetbuilderError,
        match=r"produced shape \[16, 24, 24\] but its builder "
        r"declared \[16, 25, 25\]",
    ):
        summarize(model, plan, spec)


@pytest.mark.parametrize("depth", [0, -1, 1.5, "2", True])
def test_summary_rejects_a_bad_depth(depth: object) -> None:
    spec = read_spec(REPO_ROOT / "specs" / "model5.yaml")
    model, plan = compile_spec(spec)
    with pytest.raises(NetbuilderError, match=f"integer >= 1, got {depth!r}"):
        summarize(model, plan, spec, depth)  # type: ignore[arg-type]


def test_depth_two_lists_inner_modules_with_dotted_names() -> None:
    summary = summary_of(read_spec(REPO_ROOT / "specs" / "model5.yaml"), depth=2)
    rows = {row.name: row for row in summary.layers}
    names = [row.name for row in summary.layers]
    assert names[:5] == ["conv1", "conv1.conv", "conv1.bn", "conv1.act", "conv2"]
    assert "conv5.dropout" in names
    assert (rows["conv1.conv"].type, rows["conv1.conv"].depth) == ("Conv2d", 2)
    assert rows["conv1.conv"].output_shape == (6, 26, 26)
    assert rows["conv1.conv"].params == 54 and rows["conv1.bn"].params == 12
    assert rows["conv1.conv"].macs == rows["conv1"].macs == 54 * 26 * 26
    assert rows["conv1.bn"].macs == 0
    shallow = summary_of(read_spec(REPO_ROOT / "specs" / "model5.yaml"), depth=1)
    assert not any("." in row.name for row in shallow.layers)


def test_fire_inner_rows() -> None:
    summary = summary_of(read_spec(REPO_ROOT / "specs" / "squeezenet_v11.yaml"), depth=2)
    rows = {row.name: row for row in summary.layers}
    assert rows["fire2.squeeze"].output_shape == (16, 23, 23)
    assert rows["fire2.expand3x3"].output_shape == (64, 23, 23)
    assert rows["fire2.expand3x3"].macs == 64 * 16 * 9 * 23 * 23
    assert rows["fire2"].macs == sum(
        rows[f"fire2.{c}"].macs for c in ("squeeze", "expand1x1", "expand3x3")
    )


# ---- known values -------------------------------------------------------------------------


def test_model5_has_8018_params() -> None:
    summary = summary_of(read_spec(REPO_ROOT / "specs" / "model5.yaml"))
    assert (summary.total_params, summary.trainable_params) == (8018, 8018)
    assert summary.non_trainable_params == 0
    assert summary.memory.params == 8018 * 4 / MB
    assert summary.memory.input == 28 * 28 * 4 / MB


def test_squeezenet_v11_pool_outputs() -> None:
    summary = summary_of(read_spec(REPO_ROOT / "specs" / "squeezenet_v11.yaml"))
    pools = [row for row in summary.layers if row.type == "maxpool"]
    assert [row.output_shape[1:] for row in pools] == [(23, 23), (11, 11), (5, 5)]
    assert [row.name for row in pools] == ["maxpool1", "maxpool2", "maxpool3"]


def test_single_conv_macs_and_memory_by_hand() -> None:
    spec = tiny_spec(
        "{channels: 1, size: 28}", "  - conv: {out_channels: 8, kernel_size: 3, bias: false}\n"
    )
    summary = summary_of(spec)
    (row,) = summary.layers
    assert (row.output_shape, row.params, row.macs) == ((8, 26, 26), 72, 72 * 26 * 26)
    assert summary.total_macs == 72 * 26 * 26 == 48_672
    assert summary.memory.input == 28 * 28 * 4 / MB
    assert summary.memory.forward_backward == 2 * 8 * 26 * 26 * 4 / MB
    assert summary.memory.params == 72 * 4 / MB
    assert summary.memory.total == pytest.approx(
        summary.memory.input + summary.memory.forward_backward + summary.memory.params
    )


def test_grouped_conv_and_linear_macs_by_hand() -> None:
    spec = tiny_spec(
        "{channels: 4, size: 10}",
        "  - conv: {out_channels: 8, groups: 2, padding: 1}\n"
        "  - flatten: {}\n"
        "  - linear: {out_features: 10}\n",
    )
    conv, flatten, linear = summary_of(spec).layers
    assert conv.macs == (8 * 2 * 3 * 3) * 10 * 10  # each output sees in_channels / groups = 2
    assert conv.params == 8 * 2 * 9 + 8
    assert flatten.macs == 0
    assert linear.macs == 800 * 10 and linear.params == 800 * 10 + 10


def test_receptive_field_of_a_tiny_stack() -> None:
    spec = tiny_spec(
        "{channels: 1, size: 28}",
        "  - conv: {out_channels: 4}\n"
        "  - conv: {out_channels: 4}\n"
        "  - maxpool: {kernel_size: 2}\n"
        "  - flatten: {}\n"
        "  - linear: {out_features: 10}\n",
    )
    summary = summary_of(spec)
    rows = summary.receptive_field
    assert [r.layer for r in rows] == ["conv1", "conv2", "maxpool1", "flatten1"]
    assert [r.r_out for r in rows[:3]] == [3, 5, 6]
    assert [r.j_out for r in rows[:3]] == [1, 1, 2]
    assert [r.n_out for r in rows[:3]] == [26, 24, 12]
    assert [r.start for r in rows[:3]] == [1.5, 2.5, 3.0]
    assert summary.final_receptive_field == 6  # flatten is a 1x1 window: nothing grows


def test_receptive_field_with_padding_and_stride() -> None:
    spec = tiny_spec(
        "{channels: 1, size: 32}",
        "  - conv: {out_channels: 4, kernel_size: 5, stride: 2, padding: 2}\n"
        "  - conv: {out_channels: 4, kernel_size: 3, stride: 2, padding: 1}\n"
        "  - gap: {}\n",
    )
    first, second, gap = summary_of(spec).receptive_field
    assert (first.n_out, first.j_out, first.r_out, first.start) == (16, 2, 5, 0.5)
    assert (second.n_out, second.j_out, second.r_out, second.start) == (8, 4, 9, 0.5)
    assert (gap.n_out, gap.r_out) == (1, 9 + 7 * 4)
    assert gap.start == 0.5 + 3.5 * 4


# ---- golden outputs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "depth"), [("model5", 1), ("model5", 2), ("squeezenet_v11", 1), ("squeezenet_v11", 2)]
)
def test_table_matches_golden(stem: str, depth: int) -> None:
    text = format_table(summary_of(read_spec(REPO_ROOT / "specs" / f"{stem}.yaml"), depth))
    golden = GOLDEN_DIR / (f"{stem}.txt" if depth == 1 else f"{stem}_depth{depth}.txt")
    if UPDATE_GOLDEN:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"{golden} is missing; create it with NETBUILDER_UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8"), (
        f"summary of {stem} differs from {golden.name}; if the change is intended, rerun with "
        "NETBUILDER_UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_memory_matches_torchsummary(path: Path) -> None:
    """Independent recount with torchsummary's own rule: a hook on every module except
    Sequential/ModuleList containers and the model itself, each call's output counted."""
    spec = read_spec(path)
    model, plan = compile_spec(spec)
    values: list[int] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: values.append(out[0].numel()))
        for m in model.modules()
        if not isinstance(m, (torch.nn.Sequential, torch.nn.ModuleList)) and m is not model
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *spec.input_shape))
    for handle in handles:
        handle.remove()
    memory = summarize(model, plan, spec).memory
    assert memory.forward_backward == 2 * sum(values) * 4 / MB
    assert memory.input == math.prod(spec.input_shape) * 4 / MB


def test_memory_counts_a_new_block_output_but_not_a_passed_on_one() -> None:
    """Fire concatenates (a new tensor: counted); conv_bn hands on its last layer's output."""
    fire = tiny_spec(
        "{channels: 4, size: 8}", "  - fire: {squeeze: 2, expand1x1: 3, expand3x3: 5}\n"
    )
    inner = 2 * (2 + 3 + 5) * 64  # squeeze, both expands, and the ReLU after each
    assert summary_of(fire).memory.forward_backward == 2 * (inner + 8 * 64) * 4 / MB
    conv_bn = tiny_spec("{channels: 1, size: 8}", "  - conv_bn: {out_channels: 4, padding: 1}\n")
    assert summary_of(conv_bn).memory.forward_backward == 2 * (3 * 4 * 64) * 4 / MB
