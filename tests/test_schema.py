from __future__ import annotations

import jsonschema
import pytest

import netbuilder
from conftest import SPECS
from netbuilder.registry import BLOCKS
from netbuilder.schema import TRAIN_SCHEMA, param_schema, schema_defaults, spec_schema
from netbuilder.spec import load_spec


def test_schema_is_a_valid_draft_2020_12_schema():
    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_registered_block_is_in_the_schema():
    schema = spec_schema()
    for block in BLOCKS:
        assert schema["$defs"]["layer"]["properties"][block.name] == {
            "$ref": f"#/$defs/block.{block.name}"}
        assert set(schema["$defs"][f"block.{block.name}"]["properties"]) == {
            p.name for p in block.params}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_bundled_specs_are_schema_valid(path):
    jsonschema.validate(load_spec(path).data, spec_schema())


def test_channel_parameters_accept_num_classes():
    schema = param_schema(BLOCKS.get("conv").param("out_channels"))
    jsonschema.validate("num_classes", schema)
    jsonschema.validate(8, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("classes", schema)


def test_train_defaults_come_from_the_schema():
    defaults = schema_defaults(TRAIN_SCHEMA)
    assert defaults["optimizer"]["name"] == "sgd"
    assert defaults["transforms"]["normalize"]["mean"] == [0.1307]
    assert defaults["schedule"]["name"] == "none"


def test_null_parameters_mean_no_parameters(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: n\ninput: {channels: 1, size: 8}\nnum_classes: 2\nlayers:\n"
                    "  - conv: {out_channels: 2}\n  - gap:\n")
    assert netbuilder.read_spec(path).layers[1].params == {}
