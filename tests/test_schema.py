from __future__ import annotations

import jsonschema
import pytest

import netbuilder
from conftest import SPECS
from netbuilder.spec.config import TrainConfig
from netbuilder.spec.document import load_spec
from netbuilder.spec.registry import BLOCKS
from netbuilder.spec.schema import param_schema, spec_schema


def test_schema_is_a_valid_draft_2020_12_schema():
    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_registered_block_is_in_the_schema():
    schema = spec_schema()
    for block in BLOCKS:
        assert schema["$defs"]["layer"]["properties"][block.name] == {
            "$ref": f"#/$defs/block.{block.name}"
        }
        assert set(schema["$defs"][f"block.{block.name}"]["properties"]) == {
            p.name for p in block.params
        }


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_bundled_specs_are_valid_under_the_editor_schema(path):
    """The schema editors use (`cli.py schema`) accepts every bundled spec as written."""
    jsonschema.validate(load_spec(path).data, spec_schema(editor=True))


def test_channel_parameters_accept_num_classes():
    schema = param_schema(BLOCKS.get("conv").param("out_channels"))
    jsonschema.validate("num_classes", schema)
    jsonschema.validate(8, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("classes", schema)


def schema_defaults(schema: dict) -> dict:
    return {
        key: schema_defaults(prop) if prop.get("type") == "object" else prop["default"]
        for key, prop in schema["properties"].items()
    }


def test_train_schema_is_generated_from_the_config_dataclasses():
    train = spec_schema()["$defs"]["train"]
    assert schema_defaults(train) == TrainConfig().to_dict()
    assert train["properties"]["optimizer"]["properties"]["name"]["enum"] == [
        "sgd",
        "adam",
        "adamw",
    ]
    assert "imagefolder" in train["properties"]["dataset"]["enum"]
    assert train["properties"]["epochs"]["minimum"] == 1
    assert train["properties"]["optimizer"]["properties"]["lr"]["exclusiveMinimum"] == 0
    scale = train["properties"]["transforms"]["properties"]["augment"]["properties"]["scale"]
    assert (scale["minItems"], scale["maxItems"]) == (2, 2)
    assert scale["items"]["exclusiveMinimum"] == 0


def test_every_train_field_has_a_doc():
    def docs(schema: dict, prefix: str = "") -> dict[str, str]:
        found = {}
        for key, prop in schema["properties"].items():
            found[prefix + key] = prop.get("description", "")
            if prop.get("type") == "object":
                found |= docs(prop, f"{prefix}{key}.")
        return found

    assert all(docs(spec_schema()["$defs"]["train"]).values())


def test_null_parameters_mean_no_parameters(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: n\ninput: {channels: 1, size: 8}\nnum_classes: 2\nlayers:\n"
        "  - conv: {out_channels: 2}\n  - gap:\n"
    )
    assert netbuilder.read_spec(path).layers[1].params == {}
