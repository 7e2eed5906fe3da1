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
from netbuilder.limits import MAX_EXPANSION
from netbuilder.spec.expansion import Expander
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


# ---------------------------------------------------------------- the language

MACROS = ["m0", "m1", "m2"]
LAYER_NAMES = ["a", "b", "stage", "conv_bn1", "relu1", "m01", "input"]
expressions = st.sampled_from(
    [
        "${w}",
        "${w * w}",
        "${n}",
        "${n * n * n}",
        "${i}",
        "${widths[i]}",
        "${widths[-1]}",
        "${len(widths)}",
        "${round(w, -999999999)}",
        "${ceil(w / 3)}",
        "${log(w)}",
        "${in_channels}",
        "${in_channels * 2}",
        "${2 if i == 1 else 1}",
        "${i % 2 == 0}",
        "${n > 2}",
        "${w > 1 and n < 3}",
        "${make_divisible(w * 8)}",
        "${10 ** 9}",
        "${\uff57}",
        "${widths[n]}",
        "${1e300 * 1e300}",
        "${int('9' * 30)}",
    ]
)
numbers = st.one_of(st.integers(-2, 6), st.sampled_from([0, 1, 10**9, 2**40, 20001]))
lang_scalars = st.one_of(numbers, expressions, st.sampled_from(["num_classes", "same", None]))
block_params = st.dictionaries(
    st.sampled_from(
        [
            "out_channels",
            "kernel_size",
            "stride",
            "padding",
            "p",
            "squeeze",
            "expand1x1",
            "expand3x3",
            "w",
            "n",
            "width",
        ]
    ),
    lang_scalars,
    max_size=3,
)
sources = st.one_of(
    st.sampled_from(LAYER_NAMES),
    st.integers(-4, 1),
    st.lists(st.one_of(st.sampled_from(LAYER_NAMES), st.integers(-4, -1)), min_size=1, max_size=3),
)


def items(depth: int) -> st.SearchStrategy:
    plain = st.builds(
        lambda block, params, extra: {block: params, **extra},
        st.sampled_from(
            [
                "conv_bn",
                "conv",
                "relu",
                "maxpool",
                "add",
                "concat",
                "dropout",
                "fire",
                "gap",
                *MACROS,
            ]
        ),
        st.one_of(st.none(), block_params),
        st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(LAYER_NAMES),
                "repeat": st.one_of(numbers, expressions),
                "when": expressions,
                "from": sources,
            },
        ),
    )
    if depth == 0:
        return plain
    group = st.builds(
        lambda inner, name, repeat: {"sequence": inner, "name": name, "repeat": repeat},
        st.lists(items(depth - 1), min_size=0, max_size=3),
        st.sampled_from(["stage", "a", "b"]),
        st.one_of(numbers, expressions),
    )
    return st.one_of(plain, group)


language_specs = st.fixed_dictionaries(
    {
        "name": st.just("fuzz"),
        "input": st.just({"channels": 2, "size": 8}),
        "num_classes": st.just(4),
        "layers": st.lists(items(2), min_size=1, max_size=5).map(
            lambda layers: [*layers, {"conv": {"out_channels": "num_classes"}}, {"gap": {}}]
        ),
    },
    optional={
        "params": st.fixed_dictionaries(
            {},
            optional={
                "w": lang_scalars,
                "n": numbers,
                "widths": st.just([4, 8, 16]),
                "input_channels": numbers,
                "i": numbers,
            },
        ),
        "blocks": st.dictionaries(
            st.sampled_from(MACROS),
            st.fixed_dictionaries(
                {"layers": st.lists(items(1), min_size=1, max_size=3)},
                optional={"params": block_params},
            ),
            max_size=3,
        ),
        "index_base": st.sampled_from([0, 1, 2]),
        "override": st.dictionaries(st.sampled_from(LAYER_NAMES), block_params, max_size=2),
        "insert": st.lists(
            st.fixed_dictionaries(
                {"after": st.sampled_from(LAYER_NAMES), "layers": st.lists(items(1), max_size=2)}
            ),
            max_size=2,
        ),
        "remove": st.lists(st.sampled_from(LAYER_NAMES), max_size=3),
    },
)


@FUZZ
@given(language_specs)
def test_any_language_spec_gives_a_model_or_one_error_within_the_budget(document: dict) -> None:
    """params, expressions, repeat, sequences, macros and edits, in any combination: a model
    or one NetbuilderError, never another exception, and never more item visits than the
    budgets allow (one for the spec's expansion, one for the macros' at compile time)."""
    visits = 0
    original = Expander.item

    def counted(self, *args, **kwargs):
        nonlocal visits
        visits += 1
        return original(self, *args, **kwargs)

    Expander.item = counted
    try:
        read_and_plan(yaml.safe_dump(document, allow_unicode=True))
    finally:
        Expander.item = original
    assert visits <= 2 * MAX_EXPANSION


def test_the_language_strategies_reach_valid_specs() -> None:
    """Guard against a fuzzer that only ever produces errors."""
    document = {
        "name": "fuzz",
        "input": {"channels": 2, "size": 8},
        "num_classes": 4,
        "params": {"w": 2, "widths": [4, 8, 16]},
        "blocks": {
            "m0": {
                "params": {"width": None},
                "layers": [
                    {"conv_bn": {"out_channels": "${width * i}", "padding": 1}, "repeat": 2}
                ],
            }
        },
        "layers": [
            {"m0": {"width": "${widths[i]}"}, "repeat": "${w}"},
            {"conv": {"out_channels": "num_classes"}},
            {"gap": {}},
        ],
    }
    spec = spec_from_text(yaml.safe_dump(document))
    assert compile_spec(spec, device="meta")[1][-1].out_shape == (4,)
