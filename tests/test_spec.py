from pathlib import Path

import pytest

from conftest import spec_from_text
from netbuilder.errors import NetbuilderError
from netbuilder.spec.document import load_spec, parse_spec
from netbuilder.spec.overrides import apply_overrides

TEXT = """\
name: tiny
input: {channels: 1, size: 28}
num_classes: 10
layers:
  - conv: {out_channels: 8}
  - gap: {}
"""


def test_positions_point_at_values_and_keys():
    document = parse_spec(TEXT, "tiny.yaml")
    assert document.locate(("layers", 0, "conv", "out_channels")).line == 5
    assert document.locate(("layers", 1)).line == 6
    assert document.locate_key(("input",), "size").column == 22


def test_locate_falls_back_to_nearest_ancestor():
    document = parse_spec(TEXT, "tiny.yaml")
    assert document.locate(("layers", 0, "conv", "missing")).line == 5


def test_yaml_is_loaded_safely():
    with pytest.raises(NetbuilderError, match="invalid YAML"):
        parse_spec("name: !!python/object/apply:os.system ['true']\n", "evil.yaml")


def test_duplicate_keys_are_errors():
    with pytest.raises(NetbuilderError, match="duplicate key 'name'"):
        parse_spec("name: a\nname: b\n")


def test_missing_file_names_it(tmp_path: Path):
    with pytest.raises(NetbuilderError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value) and "not found" in str(info.value)


def test_overrides_parse_values_and_walk_lists():
    document = apply_overrides(
        parse_spec(TEXT),
        [
            "input.size=224",
            "layers.0.conv.out_channels=16",
            "train.optimizer.lr=0.05",
            "name=renamed",
            "train.epochs=3",
            "train.schedule.gamma=1e-3",
        ],
    )
    assert document.data["train"]["schedule"]["gamma"] == 0.001
    assert document.data["input"]["size"] == 224
    assert document.data["layers"][0]["conv"]["out_channels"] == 16
    assert document.data["train"]["optimizer"] == {"lr": 0.05}
    assert document.data["train"]["epochs"] == 3
    assert document.data["name"] == "renamed"


def test_overrides_do_not_touch_the_original():
    original = parse_spec(TEXT)
    apply_overrides(original, ["input.size=32"])
    assert original.data["input"]["size"] == 28


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("input.size", "KEY=VALUE"),
        ("layers.9.conv.out_channels=3", "neither an index nor a layer name"),
        ("name.first=x", "not a mapping"),
    ],
)
def test_bad_overrides(assignment: str, message: str):
    with pytest.raises(NetbuilderError, match=message):
        apply_overrides(parse_spec(TEXT), [assignment])


@pytest.mark.parametrize(
    "text, value",
    [
        ("1e-3", 0.001),
        ("3E-4", 0.0003),
        ("5e2", 500.0),
        ("1.5e3", 1500.0),
        ("-2e+2", -200.0),
        (".5e-1", 0.05),
    ],
)
def test_exponent_floats_are_numbers_as_people_write_them(text: str, value: float) -> None:
    """YAML 1.2's float rule: PyYAML alone would read `1e-3` as the string '1e-3'."""
    assert parse_spec(f"x: {text}\n").data["x"] == value
    assert apply_overrides(parse_spec("x: 1\n"), [f"x={text}"]).data["x"] == value


def test_exponent_floats_in_a_spec_file_build() -> None:
    spec = spec_from_text(
        "name: e\ninput: {channels: 1, size: 8}\nnum_classes: 2\nlayers:\n"
        "  - conv_bn: {out_channels: 2, bn_eps: 1e-3}\n  - gap: {}\n"
        "train:\n  optimizer: {name: adam, lr: 3e-4, weight_decay: 5E-5}\n"
    )
    assert spec.layers[0].params["bn_eps"] == 0.001
    assert (spec.train.optimizer.lr, spec.train.optimizer.weight_decay) == (0.0003, 0.00005)


def test_a_list_as_a_key_is_one_located_error() -> None:
    """YAML allows `[a]: 1` or `? {b: 2}` as keys; a spec never needs one."""
    for text in ("name: x\n[a, b]: 1\n", "name: x\n? {b: 2}\n: 3\n"):
        with pytest.raises(NetbuilderError, match="a key is a name") as caught:
            parse_spec(text, "keys.yaml")
        assert str(caught.value).startswith("keys.yaml:2:")
