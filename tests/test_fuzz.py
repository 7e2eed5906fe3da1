"""Property-based fuzzing of the spec path: whatever YAML arrives, reading, resolving (params,
expressions, repeat, macros), validating and planning it (on the meta device) gives a Spec and
a model, or one NetbuilderError; never another exception, and never more than a bounded time."""

from __future__ import annotations

import math
import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import spec_from_text
from netbuilder.compiler import compile_spec
from netbuilder.errors import NetbuilderError
from netbuilder.spec.registry import BLOCKS

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),  # 3000 for a hunt
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow],
)
PARAM_NAMES = sorted(
    {p.name for block in BLOCKS for p in block.params}
    | {"name", "junk", "from", "repeat", "when", "sequence"}
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300),
    st.integers(),
    st.floats(allow_nan=True),
    st.sampled_from(
        [
            "num_classes",
            "relu",
            "same",
            "",
            "conv_bn_act",
            "1e-3",
            "input",
            "-1",
            "${w * 2}",
            "${w}",
            "${i}",
            "${1 / 0}",
            "${w if w > 1 else 'a'}",
            "${make_divisible(w * 10)}",
            "${x.y}",
            "${w",
        ]
    ),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(PARAM_NAMES), inner, max_size=4),
    ),
    max_leaves=12,
)
layer = st.one_of(
    st.dictionaries(
        st.sampled_from([*BLOCKS.names(), "fier"]),
        st.one_of(st.none(), st.dictionaries(st.sampled_from(PARAM_NAMES), scalars, max_size=4)),
        min_size=1,
        max_size=2,
    ),
    values,
)
documents = st.fixed_dictionaries(
    {
        "name": st.one_of(st.text(min_size=1, max_size=10), scalars),
        "input": st.one_of(
            st.fixed_dictionaries(
                {
                    "channels": st.integers(-1, 4),
                    "size": st.one_of(
                        st.integers(-1, 64), st.lists(st.integers(0, 64), max_size=3)
                    ),
                }
            ),
            values,
        ),
        "num_classes": st.one_of(st.integers(-1, 20), scalars),
        "layers": st.one_of(st.lists(layer, max_size=8), values),
    },
    optional={
        "train": values,
        "params": st.dictionaries(st.sampled_from(["w", "x", "1bad"]), scalars, max_size=3),
        "blocks": st.dictionaries(st.sampled_from(["mac", "conv"]), values, max_size=2),
        "override": values,
        "insert": values,
        "remove": values,
        "junk": values,
    },
)


def read_and_plan(text: str) -> None:
    """The whole path a `validate` takes; only NetbuilderError may leave it."""
    try:
        spec = spec_from_text(text, "<fuzz>")
        compile_spec(spec, device="meta")
    except NetbuilderError:
        pass


@FUZZ
@given(documents)
def test_generated_specs_give_a_model_or_one_netbuilder_error(document: dict) -> None:
    read_and_plan(yaml.safe_dump(document, allow_unicode=True))


@FUZZ
@given(st.text(alphabet="[]{}:-&*!|>'\"#,.? \n\tab019xnul", max_size=200))
def test_arbitrary_yaml_text_gives_a_spec_or_one_netbuilder_error(text: str) -> None:
    read_and_plan(text)


@FUZZ
@given(documents, st.integers(0, 400), st.sampled_from(["&a ", "*a", "\n  - ", ": ", "[", "\0"]))
def test_corrupted_specs_give_a_spec_or_one_netbuilder_error(
    document: dict, at: int, insert: str
) -> None:
    text = yaml.safe_dump(document)
    at = min(at, len(text))
    read_and_plan(text[:at] + insert + text[at:])


def test_the_strategies_reach_valid_specs() -> None:
    """Guard against a fuzzer that only ever produces junk: a plain generated spec plans."""
    text = yaml.safe_dump(
        {
            "name": "x",
            "input": {"channels": 1, "size": 8},
            "num_classes": 10,
            "layers": [{"conv": {"out_channels": "num_classes"}}, {"gap": None}],
        }
    )
    spec = spec_from_text(text)
    assert math.prod(compile_spec(spec, device="meta")[1][-1].out_shape) == 10
