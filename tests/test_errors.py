"""Every malformed spec in tests/specs_bad/ gives one located line on stderr and exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT

BAD = ROOT / "tests" / "specs_bad"

# file -> (line:column or None, the message it must contain)
EXPECTED = {
    "bad_choice.yaml": ("5:39", "order: 'bn_first' is not one of ['conv_bn_act', 'conv_act_bn']"),
    "bad_layer_name.yaml": ("7:11", "(2fast).name: '2fast' does not match"),
    "bad_optimizer.yaml": ("8:21", "train.optimizer.name: 'sgdd' is not one of"),
    "conv_after_gap.yaml": (
        "7:5",
        "(conv2): conv needs a (channels, height, width) input but gets the flat shape 8",
    ),
    "dropout_out_of_range.yaml": (
        "6:18",
        "(dropout1).p: 1.5 is greater than or equal to the maximum of 1",
    ),
    "duplicate_key.yaml": ("4:1", "duplicate key 'num_classes'"),
    "duplicate_name.yaml": ("7:5", "layer name 'stem' is already used by layers[0]"),
    "empty.yaml": ("1:1", "the spec is empty"),
    "empty_layers.yaml": ("4:9", "layers: [] should be non-empty"),
    "float_kernel.yaml": (
        "5:42",
        "(conv1).kernel_size: expected an integer >= 1 or a list of 2 integers, got 3.5",
    ),
    "invalid_yaml.yaml": ("6:8", "invalid YAML"),
    "layer_not_mapping.yaml": ("6:5", "layers[1]: a layer maps one block name to its parameters"),
    "linear_on_feature_map.yaml": ("6:5", "linear needs a flat input but gets 8x26x26"),
    "missing_layers.yaml": ("1:1", "missing required key 'layers'"),
    "missing_param.yaml": ("6:11", "(fire1): missing required parameter 'expand3x3'"),
    "negative_channels.yaml": (
        "6:21",
        "(fire1).squeeze: expected an integer >= 1 or 'num_classes', got -16",
    ),
    "shape_collapse.yaml": (
        "12:5",
        "layers[6] (conv2): spatial size collapses: a 3x3 window "
        "with stride 1 and padding 0 does not fit a 1x1 input",
    ),
    "top_level_list.yaml": ("1:1", "expected an object"),
    "two_blocks.yaml": ("5:5", "a layer names one block, this one names 2: conv, relu"),
    "unknown_block.yaml": ("6:5", "layers[1] (fier1): unknown block 'fier'; did you mean 'fire'?"),
    "unknown_key.yaml": ("4:1", "unknown key 'descripton'; did you mean 'description'?"),
    "unknown_param.yaml": (
        "5:32",
        "unknown parameter 'kernal_size' of conv_bn; did you mean 'kernel_size'?",
    ),
    "wrong_type.yaml": (
        "5:42",
        "(conv1).kernel_size: expected an integer >= 1 or a list of 2 integers, got 'three'",
    ),
    "zero_input_size.yaml": ("2:28", "input.size: expected an integer >= 1 or a list of 2"),
    # the whole network (checks.py): one score per class, one probability head
    "wrong_output_shape.yaml": (
        "6:5",
        "(gap1): the model outputs 16 values per image but num_classes is 10",
    ),
    "double_log_softmax.yaml": (
        "9:5",
        "(log_softmax2): log_softmax after log_softmax 'log_softmax1'",
    ),
    # what torch would refuse only with a traceback
    "groups_not_dividing.yaml": (
        "5:5",
        "groups 2 must divide both the input channels (3) and out_channels (10)",
    ),
    "pool_padding.yaml": ("5:5", "padding 2 is more than half the kernel size 3"),
    "whole_number_float.yaml": (
        "2:28",
        "input.size: expected an integer >= 1 or a list of 2 integers, got 28.0",
    ),
    "nan_learning_rate.yaml": ("8:19", "train.optimizer.lr: expected a finite number, got nan"),
    "huge_integer.yaml": (
        "5:26",
        "1000000000000 is larger than the largest integer a spec may hold",
    ),
    # sizes: refused before anything is allocated (limits.py)
    "giant_weights.yaml": ("6:5", "the model has 90,010,100,010 parameters"),
    "giant_input.yaml": (
        "5:5",
        "one image's layer outputs take 38,875.1 MB as float32; the limit is 1,024.0 MB",
    ),
    "recursive_alias.yaml": ("4:9", "a YAML alias refers to a value that contains it"),
    "deep_nesting.yaml": ("6:45", "the spec nests deeper than 32 levels"),
    # graphs: `from:`, add and concat
    "graph_unknown_from.yaml": ("8:11", "(conv1).from: unknown layer 'aa'; did you mean 'a'?"),
    "graph_forward_reference.yaml": (
        "6:11",
        "'b' comes later (layers[1]); a layer reads only earlier layers",
    ),
    "graph_cycle.yaml": (
        "7:11",
        "(a).from: a layer cannot read its own output ('a'): that would be a cycle",
    ),
    "graph_before_input.yaml": ("7:11", "(conv2).from: -3 reaches before the input"),
    "graph_add_shapes.yaml": (
        "9:5",
        "add needs inputs of one shape: b gives 16x28x28, a gives 8x28x28",
    ),
    "graph_concat_sizes.yaml": (
        "9:5",
        "concat needs inputs that differ only in channels: a gives 8x28x28, b gives 8x14x14",
    ),
    "graph_merge_one_input.yaml": ("6:5", "add merges two or more layers"),
    "graph_two_inputs.yaml": ("7:5", "conv reads one layer but from: names 2"),
    "graph_unused_branch.yaml": ("5:5", "the output of 'side' is never used"),
    "same_even_kernel.yaml": ("5:5", "padding 'same' needs an odd kernel, got 2x2"),
    # the language: params, expressions, extends, edits, macros, repeat
    "lang_unknown_param.yaml": (
        "6:26",
        "layers[0].conv.out_channels: in ${int(8 * widht)}: unknown name 'widht'",
    ),
    "lang_division_by_zero.yaml": (
        "6:26",
        "cannot evaluate ${16 // groups}: integer division or modulo by zero",
    ),
    "lang_fractional_channels.yaml": (
        "6:26",
        "(conv1).out_channels: expected an integer >= 1 "
        "or 'num_classes', got 2.4 (from ${8 * width})",
    ),
    "lang_extends_missing.yaml": ("1:10", "extends: no_such_base.yaml: spec file not found"),
    "lang_override_missing.yaml": (
        "4:3",
        "override: no layer named 'conv9'; did you mean 'conv6'?",
    ),
    "lang_macro_recursion.yaml": ("8:9", "macro 'loop' uses itself (loop -> loop)"),
    "lang_macro_from_before_input.yaml": (
        "9:15",
        "pair1.add1.from: -3 reaches before the input "
        "(this is layer 2 of its group: -2 reads the "
        "input of 'pair1')",
    ),
    "lang_sequence_from_before_input.yaml": (
        "9:15",
        "stage.add1.from: -3 reaches before the input (this is layer 2 of its group",
    ),
    "lang_repeat_bomb.yaml": (
        "5:5",
        "layers[0]: the spec expands to more than 20,000 layer instances",
    ),
    "lang_nested_repeat_bomb.yaml": (
        "6:9",
        "layers[0].sequence[0]: the spec expands to more than 20,000 layer instances",
    ),
    "lang_macro_bomb.yaml": ("91:9", "more than 5,000 layers once the macros are expanded"),
    "alias_bomb.yaml": (
        None,
        "the spec holds 490,329,084 values once its YAML aliases are "
        "expanded; the limit is 100,000",
    ),
}


def test_every_bad_spec_has_an_expectation():
    cycle = {"lang_cycle_a.yaml", "lang_cycle_b.yaml"}  # two files: tested below
    assert sorted(p.name for p in BAD.glob("*.yaml") if p.name not in cycle) == sorted(EXPECTED)
    assert len(EXPECTED) >= 15


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("command", ["build", "validate"])
def test_bad_spec_is_one_located_line(run_cli, name: str, command: str):
    position, message = EXPECTED[name]
    path = BAD / name
    result = run_cli(command, str(path))
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    where = f"{path}:{position}" if position else str(path)
    assert lines[0].startswith(f"{where}: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("name", "other"),
    [("lang_cycle_a.yaml", "lang_cycle_b.yaml"), ("lang_cycle_b.yaml", "lang_cycle_a.yaml")],
)
def test_an_extends_cycle_is_one_line_naming_the_files(run_cli, name: str, other: str):
    """The error points at the `extends` that closes the loop, in the other file."""
    result = run_cli("validate", str(BAD / name))
    (line,) = result.err.strip().splitlines()
    assert result.code == 2
    assert line.startswith(
        f"{BAD / other}:1:10: error: extends: a cycle: {name} -> {other} -> {name}"
    )


def test_several_problems_are_reported_together(run_cli, tmp_path):
    spec = tmp_path / "many.yaml"
    spec.write_text(
        "name: x\ninput: {channels: 1, size: 28}\nnum_classes: 10\nlayers:\n"
        "  - fier: {}\n  - conv: {out_channels: -1}\n"
    )
    result = run_cli("validate", str(spec))
    lines = result.err.strip().splitlines()
    assert result.code == 2
    assert lines[-1] == "2 errors; nothing was built."
    assert "unknown block 'fier'" in lines[0] and "out_channels" in lines[1]


def test_train_section_rules_are_located_all_at_once(run_cli, tmp_path):
    """`validate` runs the train section's own rules too, each at its line, with the rest."""
    spec = tmp_path / "train.yaml"
    spec.write_text(
        "name: x\ninput: {channels: 1, size: 28}\nnum_classes: 10\nlayers:\n"
        "  - conv: {out_channels: num_classes}\n  - gap: {}\n  - fier: {}\n"
        "train:\n  epochs: 2\n  schedule: {name: onecycle, warmup_epochs: 3}\n"
        "  transforms:\n    normalize: {mean: [0.1, 0.2]}\n"
    )
    result = run_cli("validate", str(spec))
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        f"{spec}:7:5: error: layers[2] (fier1): unknown block 'fier'; did you mean 'fire'?",
        f"{spec}:12:23: error: train.transforms.normalize.mean: has 2 values; expected 1 or 1 "
        "(the spec's input channels), got [0.1, 0.2]",
        f"{spec}:10:45: error: train.schedule.warmup_epochs: onecycle warms up by itself; set "
        "pct_start instead of warmup_epochs (got 3)",
        f"{spec}:10:45: error: train.schedule.warmup_epochs: 3 must be less than train.epochs (2)",
        "4 errors; nothing was built.",
    ]


def test_missing_spec_file(run_cli, tmp_path):
    result = run_cli("build", str(tmp_path / "absent.yaml"))
    assert result.code == 2
    assert result.err.strip() == f"{tmp_path / 'absent.yaml'}: error: spec file not found"


@pytest.mark.slow
def test_real_process_prints_no_traceback():
    completed = subprocess.run(
        [sys.executable, "cli.py", "build", str(BAD / "unknown_block.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.count("\n") == 1 and "did you mean 'fire'" in completed.stderr


def test_debug_flag_shows_the_traceback(run_cli):
    result = run_cli("build", str(BAD / "unknown_block.yaml"), "--debug")
    assert result.code == 2 and "Traceback" in result.err
