"""The spec language: params and safe expressions, repeat and when, sequences, extends with
edits by layer name, macros, `build --resolved`, `diff`, several input sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import netbuilder
from conftest import ROOT, spec_from_text
from netbuilder.compiler import compile_spec
from netbuilder.errors import NetbuilderError
from netbuilder.report.summary import summarize
from netbuilder.spec.expressions import evaluate, make_divisible

HEAD = "name: l\ninput: {channels: 1, size: 16}\nnum_classes: 10\n"


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def build(tmp_path: Path, text: str, overrides: list[str] | None = None):
    spec = netbuilder.read_spec(write(tmp_path, text), overrides)
    model, plan = compile_spec(spec)
    return spec, model, plan


# ---------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("64 * width", 32.0),
        ("int(64 * width)", 32),
        ("7 // 2 + 7 % 2", 4),
        ("2 if imagenet else 1", 1),
        ("max(8, min(3, 5))", 8),
        ("round(2.6)", 3),
        ("width > 0.25 and not imagenet", True),
        ("1 < 2 <= 2", True),
        ("make_divisible(24 * width, 8)", 16),
        ("-depth + 10", 7),
        ("zero != 0 and 10 / zero > 1", False),
        ("zero == 0 or 10 / zero > 1", True),
    ],
)
def test_expressions(text: str, value: object) -> None:
    assert evaluate(text, {"width": 0.5, "imagenet": False, "depth": 3, "zero": 0}) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("widht * 2", "unknown name 'widht'"),
        ("1 / 0", "division by zero"),
        ("__import__('os')", "unknown function '__import__'"),
        ("width.real", "is not allowed"),
        ("(lambda: 1)()", "is not allowed"),
        ("[1, 2][0]", "is not allowed"),
        ("2 ** 100", "is not allowed"),
        ("'a' * 3", "arithmetic needs numbers"),
        ("64 *", "cannot parse"),
        ("1e308 * 10", "beyond 1e\\+18"),
        ("round(1, -999999999)", "round takes at most 30 digits"),
        ("999999999 * 999999999 * 999999999", "a value on the way is"),
        ("int('9' * 50)", "arithmetic needs numbers"),
        ("int('9999999999999999999999')", "a value on the way is"),
        ("\uff57idth * 2", "names are written in ASCII"),
        ("widths[3]", "index 3 is outside a list of 3"),
        ("widths[0.5]", "a list index is a whole number"),
        ("width[0]", "only a list can be indexed"),
        ("len(width)", "len takes a list"),
        ("log(0)", "math domain error"),
    ],
)
def test_expressions_refuse_what_is_not_arithmetic(text: str, message: str) -> None:
    with pytest.raises(NetbuilderError, match=message):
        evaluate(text, {"width": 0.5, "widths": [64, 128, 256]})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("ceil(2.1) + floor(2.9)", 5),
        ("sqrt(16)", 4.0),
        ("round(log(8, 2))", 3),
        ("widths[i] * 2", 256),
        ("widths[-1]", 256),
        ("len(widths)", 3),
        ("round(1234.5678, 2)", 1234.57),
    ],
)
def test_expressions_have_math_and_lists(text: str, value: object) -> None:
    """RegNet-style widths need ceil/floor/log; per-stage widths and depths are lists."""
    assert evaluate(text, {"widths": [64, 128, 256], "i": 1}) == value


def test_make_divisible_is_mobilenets_rounding() -> None:
    assert [make_divisible(c) for c in (32 * 0.35, 16 * 0.35, 1280 * 1.4, 96 * 0.75)] == [
        16,
        8,
        1792,
        72,
    ]


def test_params_and_expressions_in_layers(tmp_path: Path) -> None:
    text = HEAD + (
        "params: {width: 1.0, wide: false}\nlayers:\n"
        "  - conv: {out_channels: '${int(8 * width) * (2 if wide else 1)}'}\n"
        "    name: 'c${int(8 * width)}'\n"
        "  - conv: {out_channels: num_classes}\n  - gap: {}\n"
    )
    _, _, plan = build(tmp_path, text, ["params.width=0.5"])
    assert plan[0].node.name == "c4" and plan[0].out_shape[0] == 4
    _, _, plan = build(tmp_path, text, ["params.wide=true"])
    assert plan[0].out_shape[0] == 16


def test_a_non_integer_channel_count_names_its_expression(tmp_path: Path) -> None:
    text = HEAD + (
        "params: {width: 0.3}\nlayers:\n  - conv: {out_channels: '${8 * width}'}\n  - gap: {}\n"
    )
    with pytest.raises(NetbuilderError) as caught:
        build(tmp_path, text)
    assert "(from ${8 * width})" in str(caught.value) and ":6:" in str(caught.value)


# ---------------------------------------------------------------- repeat, when, sequence


def test_repeat_numbers_names_and_sees_i(tmp_path: Path) -> None:
    _, model, plan = build(
        tmp_path,
        HEAD
        + """\
layers:
  - conv: {out_channels: '${4 * i}', padding: 1}
    name: grow
    repeat: 3
  - conv: {out_channels: num_classes}
    repeat: 2
  - gap: {}
""",
    )
    assert [p.node.name for p in plan] == ["grow.1", "grow.2", "grow.3", "conv1", "conv2", "gap1"]
    assert [p.out_shape[0] for p in plan[:3]] == [4, 8, 12]
    assert "grow.2.weight" in model.state_dict()


def test_a_repeated_sequence_nests_names_like_torchvision(tmp_path: Path) -> None:
    _, model, plan = build(
        tmp_path,
        HEAD
        + """\
params: {blocks: 2}
layers:
  - conv: {out_channels: 8, padding: 1}
    name: stem
  - sequence:
      - conv_bn: {out_channels: 8, padding: 1}
        name: conv1
      - conv_bn: {out_channels: 8, padding: 1, activation: none}
        name: conv2
      - add: {}
        from: [conv2, input]
    name: stage
    repeat: '${blocks}'
  - conv: {out_channels: num_classes}
  - gap: {}
""",
    )
    names = [p.node.name for p in plan]
    assert names[1:7] == [
        "stage.1.conv1",
        "stage.1.conv2",
        "stage.1.add1",
        "stage.2.conv1",
        "stage.2.conv2",
        "stage.2.add1",
    ]
    assert plan[3].node.inputs == ("stage.1.conv2", "stem")  # `input` of instance 1
    assert plan[6].node.inputs == ("stage.2.conv2", "stage.1.add1")  # of instance 2
    assert "stage.2.conv1.conv.weight" in model.state_dict()


def test_when_keeps_an_item_only_where_it_holds(tmp_path: Path) -> None:
    text = HEAD + (
        "params: {deep: false}\nlayers:\n"
        "  - conv: {out_channels: 4, padding: 1}\n    when: '${deep}'\n"
        "  - conv: {out_channels: num_classes}\n  - gap: {}\n"
    )
    assert len(build(tmp_path, text)[2]) == 2
    assert len(build(tmp_path, text, ["params.deep=true"])[2]) == 3


# ---------------------------------------------------------------- extends and edits


BASE = (
    HEAD
    + """\
params: {width: 1.0}
layers:
  - conv: {out_channels: '${int(8 * width)}', padding: 1}
    name: stem
  - conv: {out_channels: 8, padding: 1}
    name: body
  - dropout: {p: 0.5}
    name: drop
  - conv: {out_channels: num_classes}
    name: head
  - gap: {}
"""
)


def test_extends_edits_layers_by_name_and_changes_params(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # `../base.yaml` from variants/ stays in the working folder
    write(tmp_path, BASE, "base.yaml")
    (tmp_path / "variants").mkdir()
    child = write(
        tmp_path,
        """\
extends: ../base.yaml
name: child
params: {width: 2.0}
override:
  body: {out_channels: 12}
insert:
  - after: body
    layers:
      - relu: {}
        name: act
remove: [drop]
""",
        "variants/child.yaml",
    )
    spec = netbuilder.read_spec(child)
    _, plan = compile_spec(spec)
    assert spec.name == "child" and spec.input_shape == (1, 16, 16)
    assert [p.node.name for p in plan] == ["stem", "body", "act", "head", "gap1"]
    assert [p.out_shape[0] for p in plan[:2]] == [16, 12]
    changed = spec.document.locate(("layers", 1, "conv", "out_channels"))
    assert changed.file.endswith("variants/child.yaml") and changed.line == 5
    assert spec.layers[0].location.file.endswith("base.yaml")


def test_set_addresses_layers_by_name(tmp_path: Path) -> None:
    _, _, plan = build(tmp_path, BASE, ["layers.body.conv.out_channels=6"])
    assert plan[1].out_shape[0] == 6
    _, _, plan = build(
        tmp_path,
        HEAD + "layers:\n  - conv: {out_channels: 4}\n    name: a.b\n"
        "  - conv: {out_channels: num_classes}\n  - gap: {}\n",
        ["layers.a.b.conv.out_channels=5"],
    )
    assert plan[0].out_shape[0] == 5


def test_squeezenet_variant_by_extends(tmp_path: Path) -> None:
    write(tmp_path, (ROOT / "specs" / "squeezenet_v11.yaml").read_text(), "squeezenet_v11.yaml")
    path = write(
        tmp_path,
        "extends: squeezenet_v11.yaml\nname: squeezenet_small\noverride:\n  fire2: {squeeze: 8}\n",
    )
    spec = netbuilder.read_spec(path)
    model, _ = compile_spec(spec)
    assert model.fire2.squeeze.out_channels == 8
    assert model.fire3.squeeze.out_channels == 16


# ---------------------------------------------------------------- macros


FIRE_MACRO = """\
blocks:
  fire_macro:
    params: {squeeze: null, expand1x1: null, expand3x3: null}
    layers:
      - conv: {out_channels: '${squeeze}', kernel_size: 1}
        name: squeeze
      - relu: {}
        name: squeeze_activation
      - conv: {out_channels: '${expand1x1}', kernel_size: 1}
        name: expand1x1
      - relu: {}
        name: expand1x1_activation
      - conv: {out_channels: '${expand3x3}', kernel_size: 3, padding: 1}
        name: expand3x3
        from: squeeze_activation
      - relu: {}
        name: expand3x3_activation
      - concat: {}
        from: [expand1x1_activation, expand3x3_activation]
"""


def test_a_fire_macro_builds_the_built_in_fire(tmp_path: Path) -> None:
    """Same modules, same state_dict keys (a strict load), same outputs as the `fire` block."""
    source = (ROOT / "specs" / "squeezenet_v11.yaml").read_text()
    body = source[source.index("name: squeezenet_v11") :]
    macro_text = FIRE_MACRO + body.replace("- fire: {", "- fire_macro: {").replace(
        ", init: kaiming_uniform}", "}"
    )
    assert "fire_macro" in macro_text
    builtin = netbuilder.build_model(
        netbuilder.read_spec(ROOT / "specs" / "squeezenet_v11.yaml")
    ).eval()
    macro = netbuilder.build_model(netbuilder.read_spec(write(tmp_path, macro_text))).eval()
    macro.load_state_dict(builtin.state_dict(), strict=True)
    leaves = [type(m).__name__ for m in builtin.fire2.children()]
    assert [type(m).__name__ for m in macro.fire2.children()] == [*leaves, "Concat"]
    x = torch.randn(2, 1, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(macro(x), builtin(x))


def test_the_inverted_residual_macro_builds_the_graphs_mobilenet_v2() -> None:
    macro = netbuilder.build_model(netbuilder.read_spec(ROOT / "specs" / "mobilenet_v2.yaml"))
    flat = netbuilder.build_model(
        netbuilder.read_spec(ROOT / "tests" / "fixtures" / "mobilenet_v2_flat.yaml")
    )
    assert list(macro.state_dict()) == list(flat.state_dict())
    macro.load_state_dict(flat.state_dict(), strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(macro.eval()(x), flat.eval()(x))


def test_macro_parameters_are_checked(tmp_path: Path) -> None:
    text = (
        HEAD + FIRE_MACRO + "layers:\n  - fire_macro: {squeeze: 2, expand1x1: 4}\n"
        "  - conv: {out_channels: num_classes}\n  - gap: {}\n"
    )
    with pytest.raises(NetbuilderError, match="missing required parameter 'expand3x3'"):
        build(tmp_path, text)


# ---------------------------------------------------------------- resolved, diff, sizes


@pytest.mark.parametrize(
    "name", ["resnet18", "mobilenet_v2", "mobilenet_v1", "resnet8_mnist", "squeezenet_v11"]
)
def test_resolved_spec_is_plain_and_builds_the_same_model(
    run_cli, tmp_path: Path, name: str
) -> None:
    result = run_cli("build", str(ROOT / "specs" / f"{name}.yaml"), "--resolved")
    assert result.code == 0, result.err
    plain = yaml.safe_load(result.out)
    assert not {"extends", "params", "blocks", "override", "insert", "remove"} & set(plain)
    assert "${" not in result.out and "repeat" not in result.out
    path = write(tmp_path, result.out)
    original = netbuilder.build_model(netbuilder.read_spec(ROOT / "specs" / f"{name}.yaml"))
    again = netbuilder.build_model(netbuilder.read_spec(path))
    assert list(again.state_dict()) == list(original.state_dict())
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in original.state_dict().items()
    }


@pytest.mark.parametrize(
    ("width", "params", "macs"),
    [
        (0.25, 470_072, 41_030_272),
        (0.5, 1_331_592, 149_497_088),
        (0.75, 2_585_560, 325_400_448),
        (1.0, 4_231_976, 568_740_352),
    ],
)
def test_mobilenet_v1_matches_the_papers_table_at_every_width(
    width: float, params: int, macs: int
) -> None:
    """Table 6/7 of the paper: 0.5M/1.3M/2.6M/4.2M parameters, 41M/149M/325M/569M mult-adds."""
    spec = netbuilder.read_spec(
        ROOT / "specs" / "mobilenet_v1.yaml",
        [f"params.width={width}", "input.channels=3", "input.size=224", "num_classes=1000"],
    )
    model, plan = compile_spec(spec, device="meta")
    summary = summarize(model, plan, spec)
    assert (summary.total_params, summary.total_macs) == (params, macs)
    assert round(summary.total_macs / 1e6) == {0.25: 41, 0.5: 149, 0.75: 325, 1.0: 569}[width]
    assert plan[-3].out_shape[1:] == (7, 7)  # the paper's strides end on 7x7


def test_mobilenet_v1_default_is_the_seeds_mnist_form() -> None:
    spec = netbuilder.read_spec(ROOT / "specs" / "mobilenet_v1.yaml")
    _, plan = compile_spec(spec, device="meta")
    assert spec.input_shape == (1, 32, 32) and plan[-3].out_shape[1:] == (1, 1)


def test_diff_shows_squeezenet_v11_needs_less_computation(run_cli) -> None:
    result = run_cli(
        "diff",
        str(ROOT / "specs" / "squeezenet_v10.yaml"),
        str(ROOT / "specs" / "squeezenet_v11.yaml"),
        "--set",
        "input.channels=3",
        "--set",
        "input.size=224",
        "--set",
        "num_classes=1000",
    )
    assert result.code == 0, result.err
    macs = next(line for line in result.out.splitlines() if line.startswith("multiply-adds"))
    assert "818,924,576" in macs and "349,151,936" in macs and "(1/2.35)" in macs
    assert any(line.startswith("*") and " conv1 " in line for line in result.out.splitlines())


def test_several_input_sizes_report_collapse_and_uneven_strides(run_cli) -> None:
    result = run_cli(
        "build",
        str(ROOT / "specs" / "model5.yaml"),
        "--input-size",
        "28",
        "--input-size",
        "14",
        "--input-size",
        "31",
    )
    lines = result.out.splitlines()
    assert result.code == 2  # one size does not fit
    assert any(line.startswith("28x28") and line.rstrip().endswith("ok") for line in lines)
    assert any(line.startswith("14x14") and "spatial size collapses" in line for line in lines)
    assert any(
        line.startswith("31x31") and "pool1 leaves 1 of 25 rows unused" in line for line in lines
    )


def test_the_editor_schema_is_current_and_accepts_expressions() -> None:
    """docs/netbuilder.schema.json (for the YAML language server) is `cli.py schema`."""
    from netbuilder.spec.schema import spec_schema

    stored = json.loads((ROOT / "docs" / "netbuilder.schema.json").read_text())
    assert stored == spec_schema(editor=True), "run `make schema`"
    assert all(
        path.read_text().startswith(
            "# yaml-language-server: $schema=../docs/netbuilder.schema.json"
        )
        for path in (ROOT / "specs").glob("*.yaml")
    )


OLD_FORMAT = """\
name: old
width_multiplier: 0.5
input: {channels: 1, size: 28}
num_classes: 10
layers:
  - conv_bn: {out_channels: 32, padding: 1}
  - fire: {squeeze: 8, expand1x1: 16, expand3x3: 16}
  - conv: {out_channels: num_classes, kernel_size: 1}
  - gap: {}
"""


def test_width_multiplier_of_an_old_spec_still_scales_its_channels(tmp_path, run_cli) -> None:
    """An old spec keeps its meaning: every channel parameter x 0.5, as the key did, with
    one note naming the params form; num_classes is not scaled."""
    path = tmp_path / "old.yaml"
    path.write_text(OLD_FORMAT)
    spec = netbuilder.read_spec(path)
    assert [layer.params for layer in spec.layers[:3]] == [
        {"out_channels": 16, "padding": 1},
        {"squeeze": 4, "expand1x1": 8, "expand3x3": 8},
        {"out_channels": "num_classes", "kernel_size": 1},
    ]
    (note,) = spec.document.notes
    assert str(note).startswith(f"{path}:2:19: note: width_multiplier is deprecated")
    assert "params: {width: 0.5}" in str(note)
    result = run_cli("build", str(path))
    assert result.code == 0 and "built old" in result.out
    assert result.err.strip() == str(note)


def test_width_multiplier_cannot_scale_macros(tmp_path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_FORMAT + "blocks:\n  twice:\n    layers:\n      - relu: {}\n")
    with pytest.raises(NetbuilderError, match="width_multiplier scales plain layers only"):
        netbuilder.read_spec(path)


SMALL = "name: s\ninput: {channels: 1, size: 8}\nnum_classes: 10\n"
TAIL = "  - conv: {out_channels: num_classes}\n  - gap: {}\n"


def test_chained_params_cannot_build_huge_numbers() -> None:
    """Each param squaring the one before it: refused on the way, not after minutes."""
    params = "".join(f"  p{k + 1}: ${{p{k} * p{k}}}\n" for k in range(40))
    with pytest.raises(NetbuilderError, match="a value on the way is"):
        spec_from_text(f"{SMALL}params:\n  p0: 10.0\n{params}layers:\n{TAIL}")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("{input_channels: 3}", "parameter 'input_channels' would hide the built-in name"),
        ("{i: 3}", "parameter 'i' would hide the built-in name"),
        ("{\uff57: 3}", "is not an ASCII identifier"),
    ],
)
def test_params_may_not_hide_built_in_names_or_fold(params: str, message: str) -> None:
    with pytest.raises(NetbuilderError, match=message) as caught:
        spec_from_text(f"{SMALL}params: {params}\nlayers:\n{TAIL}")
    assert str(caught.value).startswith("test.yaml:4:")


def test_a_macro_param_may_not_hide_in_channels() -> None:
    text = (
        f"{SMALL}blocks:\n  wide:\n    params: {{in_channels: 4}}\n    layers:\n"
        f"      - conv: {{out_channels: 4}}\nlayers:\n  - wide: {{}}\n{TAIL}"
    )
    with pytest.raises(NetbuilderError, match="parameter 'in_channels' would hide"):
        spec_from_text(text)


def test_setting_an_undeclared_param_is_a_located_error(tmp_path: Path) -> None:
    path = write(tmp_path, f"{SMALL}params: {{width: 1.0}}\nlayers:\n{TAIL}")
    with pytest.raises(NetbuilderError) as caught:
        netbuilder.read_spec(path, ["params.widht=4"])
    assert str(caught.value) == (
        "--set params.widht=4: error: the spec has no param 'widht'; "
        "did you mean 'width'? (it declares width)"
    )


def test_repeat_zero_makes_no_copies_and_one_copy_is_numbered() -> None:
    spec = spec_from_text(
        f"{SMALL}layers:\n  - relu: {{}}\n    name: skipped\n    repeat: 0\n"
        f"  - relu: {{}}\n    name: once\n    repeat: 1\n"
        f"  - sequence:\n      - relu: {{}}\n        name: act\n    name: stage\n    repeat: 2\n"
        f"{TAIL}"
    )
    assert [layer.name for layer in spec.layers][:3] == ["once.1", "stage.1.act", "stage.2.act"]


def test_index_base_zero_numbers_as_pytorch_does() -> None:
    """`layer1.0.conv1`: a spec can give its modules torchvision's state_dict keys."""
    text = (
        f"{SMALL}index_base: 0\nblocks:\n  block:\n    layers:\n"
        f"      - conv: {{out_channels: 4, padding: 1}}\n        name: conv\n        repeat: 2\n"
        f"layers:\n  - block: {{}}\n    name: layer1\n    repeat: 2\n"
        f"  - conv: {{out_channels: '${{i + 10}}'}}\n    repeat: 1\n    name: head\n"
        f"  - gap: {{}}\n"
    )
    spec = spec_from_text(text)
    model, _ = compile_spec(spec, device="meta")
    keys = [key for key in model.state_dict() if key.endswith("weight")]
    assert keys == [
        "layer1.0.conv.0.weight",
        "layer1.0.conv.1.weight",
        "layer1.1.conv.0.weight",
        "layer1.1.conv.1.weight",
        "head.0.weight",
    ]
    assert spec.layers[-2].params["out_channels"] == 10  # i counts from 0 too


def diff_rows(run_cli, first: str, second: str, *sets: str) -> list[str]:
    result = run_cli("diff", str(ROOT / "specs" / first), str(ROOT / "specs" / second), *sets)
    assert result.code == 0, result.err
    table = result.out.split("\n\n")[1].splitlines()[2:]  # below the header and the rule
    return [row for row in table if row.strip()]


def test_diff_aligns_differently_named_layers_as_a_sequence(run_cli) -> None:
    """model5 and model5_variant name their layers differently: pairs by block, not by name,
    and marks only the layers that differ (it marked all 16 rows)."""
    rows = diff_rows(run_cli, "model5.yaml", "model5_variant.yaml")
    assert len(rows) == 11  # ten pairs and the variant's extra conv_bn
    assert rows[0].startswith("    conv1 / conv_bn1") and rows[1].startswith("    conv2 / ")
    assert rows[-1].startswith("    log_softmax1")
    assert sum(row.startswith("*") for row in rows) == 7


def test_diff_keeps_names_where_they_agree(run_cli) -> None:
    rows = diff_rows(run_cli, "squeezenet_v11.yaml", "squeezenet_v11_bypass.yaml")
    assert all(" / " not in row for row in rows)
    marked = [row.split()[1] for row in rows if row.startswith("*")]
    assert marked == ["bypass3", "bypass5", "bypass7", "bypass9"]  # only the additions
