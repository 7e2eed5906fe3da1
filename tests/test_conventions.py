"""Conventions every block follows, checked so the registry stays consistent as it grows."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT
from netbuilder.spec.registry import BLOCKS

USED_TEXT = "\n".join(p.read_text() for p in [*ROOT.glob("specs/*.yaml"), *ROOT.glob("tests/*.py")])


@pytest.mark.parametrize("name", BLOCKS.names())
def test_block_is_named_documented_and_used(name):
    block = BLOCKS.get(name)
    assert re.fullmatch(r"[a-z][a-z0-9_]*", name), "block names are snake_case"
    assert block.builder.__name__ == name, "the factory function carries the block's name"
    assert block.doc and block.doc.endswith("."), "one-sentence docstring"
    for param in block.params:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", param.name)
        assert param.arg.doc, f"{name}.{param.name} is undocumented"
    assert re.search(rf"\b{name}:", USED_TEXT), f"no spec or test uses '{name}'"
