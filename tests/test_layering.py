"""The folder list is the pipeline: each stage imports only the stages before it, and the spec
stage needs no torch. Read from the source (every import, module level or inside a function),
so an upward import fails here before it tangles the package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "netbuilder"
# each stage may import itself and the stages before it, never one after it
STAGES = (
    "limits",
    "errors",
    "spec",
    "blocks",
    "compiler",
    "data",
    "report",
    "training",
    "inference",
    "export",
    "cli_train",
    "cli_deploy",
    "cli_search",
    "cli",
)
TOP_LEVEL_MODULES = 7  # cli, cli_train, cli_deploy, cli_search, inference, errors, limits
TORCH_FREE = ("errors", "limits", "spec")


def stage_of(module: str) -> str:
    """`netbuilder.spec.document` -> 'spec'; the package root is no stage of its own."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file, relative ones resolved."""
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    )
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            if node.module is None:  # `from . import x`: x is a module too
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_upward(path: Path) -> None:
    own = STAGES.index(stage_of(module_name(path)))
    upward = [
        f"line {line}: {target}"
        for line, target in imports_of(path)
        if target.startswith("netbuilder.")
        and stage_of(target) in STAGES
        and STAGES.index(stage_of(target)) > own
    ]
    assert not upward, f"{path.relative_to(ROOT)} imports a later stage: {upward}"


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if stage_of(module_name(p)) in TORCH_FREE],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_the_spec_stage_imports_no_torch(path: Path) -> None:
    heavy = [
        target
        for _, target in imports_of(path)
        if target.split(".")[0] in ("torch", "torchvision", "numpy", "PIL")
    ]
    assert not heavy, f"{path.relative_to(ROOT)} imports {heavy}"


def test_every_module_belongs_to_a_stage() -> None:
    stray = [str(p.relative_to(PACKAGE)) for p in SOURCES if stage_of(module_name(p)) not in STAGES]
    assert not stray


def test_the_top_level_is_the_pipeline() -> None:
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert folders == ["blocks", "compiler", "data", "export", "report", "spec", "training"]
    assert len(modules) <= TOP_LEVEL_MODULES, modules


BLOCK_TORCH_TEMPLATE = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"{name} was imported")
sys.meta_path.insert(0, NoTorch())
sys.path.insert(0, {root!r})
from netbuilder.cli import main
sys.exit(main(sys.argv[1:]))
"""
BLOCK_TORCH = BLOCK_TORCH_TEMPLATE.replace("{root!r}", repr(str(ROOT)))


@pytest.mark.parametrize(
    "command",
    [
        ["validate"],
        ["build"],
        ["build", "--summary"],
        ["build", "--input-size", "28"],
        ["train"],
        ["export", "--out", "x.onnx"],
        ["diff", "{spec}"],
    ],
)
def test_a_yaml_typo_is_refused_without_importing_torch(tmp_path: Path, command: list[str]) -> None:
    """The YAML is read and refused before anything needs a block or a model."""
    spec = tmp_path / "typo.yaml"
    spec.write_text("name: typo\nlayers:\n  - conv_bn: {out_channels: 8\n", encoding="utf-8")
    verb, *rest = command
    args = [verb, str(spec), *(str(spec) if word == "{spec}" else word for word in rest)]
    out = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH, *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"{spec}:4:1: error: invalid YAML"), out.stderr
    assert "torch" not in out.stderr
