from __future__ import annotations

import sys
import textwrap
from typing import Annotated

import pytest
from torch import nn

from netbuilder.errors import NetbuilderError
from netbuilder.spec.registry import BLOCKS, Arg, Block, Registry, describe_builder, register

PLUGIN = textwrap.dedent('''
    from typing import Annotated
    from torch import nn
    from netbuilder import Arg, Block, register

    @register("scale")
    def scale(in_shape, factor: Annotated[float, Arg("multiplier", minimum=0)] = 2.0) -> Block:
        """Multiply by a constant (a user block living outside netbuilder)."""
        return Block(Scale(factor), in_shape)

    class Scale(nn.Module):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor
''')
SPEC = (
    "name: p\ninput: {channels: 1, size: 8}\nnum_classes: 2\nlayers:\n"
    "  - scale: {factor: 3}\n  - conv: {out_channels: 2}\n  - gap: {}\n"
)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(NetbuilderError, match="unknown block 'fier'; did you mean 'fire'"):
        BLOCKS.get("fier")


def test_unknown_name_without_close_match_lists_known():
    registry: Registry[int] = Registry("thing")
    registry.add("alpha", 1, "here")
    with pytest.raises(NetbuilderError, match="known: alpha"):
        registry.get("zzz")


def test_duplicate_registration_names_the_first_origin():
    registry = Registry("block")

    def first(in_shape) -> Block:
        """First."""
        return Block(nn.Identity(), in_shape)

    register("twice", registry)(first)
    with pytest.raises(NetbuilderError, match=r"already registered by .*first"):
        register("twice", registry)(first)


def test_parameters_come_from_the_signature():
    definition = BLOCKS.get("conv_bn")
    names = [p.name for p in definition.params]
    assert names[:3] == ["out_channels", "kernel_size", "stride"]
    assert definition.param("out_channels").required
    assert definition.param("kernel_size").default == 3
    assert definition.param("out_channels").arg.channels


def test_undocumented_parameter_is_refused():
    def bad(in_shape, width: int = 3) -> Block:
        return Block(nn.Identity(), in_shape)

    with pytest.raises(
        NetbuilderError,
        match=r"block 'bad' .*: parameter 'width' needs a "
        r"declaration",
    ):
        describe_builder("bad", bad)


def test_documented_parameter_is_accepted():
    def good(in_shape, width: Annotated[int, Arg("w")] = 3) -> Block:
        """Good."""
        return Block(nn.Identity(), in_shape)

    assert describe_builder("good", good).params[0].default == 3


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    (tmp_path / "myblocks.py").write_text(PLUGIN)
    (tmp_path / "spec.yaml").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    BLOCKS.remove("scale")
    sys.modules.pop("myblocks", None)


def test_plugin_block_builds_from_the_cli(run_cli, plugin_dir):
    result = run_cli("--plugin", "myblocks", "build", "spec.yaml", "--format", "json")
    assert result.code == 0, result.err
    assert '"type": "scale"' in result.out


def test_plugin_appears_in_schema_and_blocks(run_cli, plugin_dir):
    assert '"block.scale"' in run_cli("schema", "--plugin", "myblocks").out
    assert "scale" in run_cli("blocks", "--plugin", "myblocks").out


def test_spec_with_plugin_block_fails_without_the_plugin(run_cli, plugin_dir):
    result = run_cli("build", "spec.yaml")
    assert result.code == 2 and "unknown block 'scale'" in result.err


def test_missing_plugin_is_a_user_error(run_cli):
    result = run_cli("--plugin", "no_such_module_xyz", "blocks")
    assert result.code == 2 and "cannot import plugin 'no_such_module_xyz'" in result.err


BROKEN_PLUGINS = {
    "undeclared": (
        "from netbuilder import Block, register\n"
        '@register("widen")\n'
        "def widen(in_shape, factor: int = 2) -> Block:\n"
        '    """Undeclared parameter."""\n',
        "plugin 'broken_undeclared': block 'widen' (broken_undeclared.widen): "
        "parameter 'factor' needs a declaration, Annotated[type, Arg(\"what it "
        'is")]',
    ),
    "duplicate": (
        "from netbuilder import Block, register\n"
        '@register("conv")\n'
        "def conv(in_shape) -> Block:\n"
        '    """Clashes with the built-in."""\n',
        "plugin 'broken_duplicate': block 'conv' is already registered by "
        "netbuilder.blocks.conv.conv; choose another name for the one in "
        "broken_duplicate.conv",
    ),
    "crashing": (
        "raise RuntimeError('no GPU here')\n",
        "plugin 'broken_crashing' failed to import: RuntimeError: no GPU here",
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_PLUGINS))
def test_a_broken_plugin_is_one_line_naming_module_and_block(run_cli, tmp_path, monkeypatch, kind):
    source, message = BROKEN_PLUGINS[kind]
    (tmp_path / f"broken_{kind}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    try:
        result = run_cli("--plugin", f"broken_{kind}", "blocks")
    finally:
        sys.modules.pop(f"broken_{kind}", None)
    assert result.code == 2
    assert result.err.strip() == f"error: {message}"
