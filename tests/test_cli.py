from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SPECS
from netbuilder.report.zoo import spec_table, with_table
from netbuilder.spec.registry import BLOCKS

JSON_FIGURES = {"model1": 14_620, "model2": 14_796, "model5": 8_018, "gap9k": 9_032}


@pytest.mark.parametrize("name", sorted(JSON_FIGURES))
def test_build_json_total_params(run_cli, name):
    result = run_cli("build", str(ROOT / "specs" / f"{name}.yaml"), "--format", "json")
    document = json.loads(result.out)
    assert result.code == 0
    assert document["total_params"] == JSON_FIGURES[name]
    for key in (
        "name",
        "input_shape",
        "output_shape",
        "trainable_params",
        "layers",
        "receptive_field",
    ):
        assert key in document
    assert {"name", "type", "output_shape", "params", "macs"} <= set(document["layers"][0])


def test_build_json_squeezenet_v11_spatial_sizes(run_cli):
    result = run_cli("build", str(ROOT / "specs" / "squeezenet_v11.yaml"), "--format", "json")
    layers = json.loads(result.out)["layers"]
    sizes = [layers[0]["output_shape"][1]] + [
        layer["output_shape"][1] for layer in layers if layer["type"] == "maxpool"
    ]
    assert sizes == [47, 23, 11, 5]


def test_build_summary_table(run_cli):
    result = run_cli("build", str(ROOT / "specs" / "model5.yaml"), "--summary")
    assert result.code == 0
    assert "Total params: 8,018" in result.out
    assert "Estimated Total Size (MB)" in result.out and "Final receptive field" in result.out


def test_depth_two_expands_blocks(run_cli):
    result = run_cli(
        "build", str(ROOT / "specs" / "squeezenet_v11.yaml"), "--summary", "--depth", "2"
    )
    assert "fire2.expand3x3" in result.out


def test_build_with_overrides(run_cli):
    result = run_cli(
        "build",
        str(ROOT / "specs" / "squeezenet_v11.yaml"),
        "--format",
        "json",
        "--set",
        "input.channels=3",
        "--set",
        "input.size=224",
        "--set",
        "num_classes=1000",
    )
    assert json.loads(result.out)["total_params"] == 1_235_496


def test_plain_build_reports_the_model(run_cli):
    result = run_cli("build", str(ROOT / "specs" / "gap9k.yaml"))
    assert result.code == 0 and "9,032 parameters" in result.out


def test_validate_all_bundled_specs(run_cli):
    result = run_cli("validate", *map(str, SPECS))
    assert result.code == 0
    assert result.out.count(": ok") == len(SPECS)


def test_validate_mixed_reports_the_bad_one(run_cli):
    result = run_cli("validate", str(SPECS[0]), str(ROOT / "tests/specs_bad/unknown_block.yaml"))
    assert result.code == 2 and "unknown block" in result.err and ": ok" in result.out


def test_blocks_lists_every_block_with_defaults(run_cli):
    result = run_cli("blocks")
    for block in BLOCKS:
        assert re.search(rf"^{block.name}: ", result.out, re.MULTILINE)
    assert "ceil_mode" in result.out and "required" in result.out


def test_schema_command_prints_json(run_cli):
    schema = json.loads(run_cli("schema").out)
    assert schema["$schema"].endswith("2020-12/schema")


def test_readme_spec_table_is_up_to_date():
    readme = (ROOT / "README.md").read_text()
    assert with_table(readme, spec_table(ROOT / "specs")) == readme, "run `make readme`"


def test_readme_plugin_example_works(run_cli, tmp_path, monkeypatch):
    """The README's user-block example, run as written."""
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n# myblocks.py\n(.*?)```", readme, re.DOTALL).group(1)
    (tmp_path / "readme_blocks.py").write_text(code)
    (tmp_path / "my.yaml").write_text(
        "name: m\ninput: {channels: 1, size: 8}\nnum_classes: 3\n"
        "layers:\n  - conv_gelu: {out_channels: num_classes}\n"
        "  - gap: {}\n"
    )
    monkeypatch.chdir(tmp_path)
    try:
        result = run_cli("--plugin", "readme_blocks", "build", "my.yaml", "--summary")
    finally:
        BLOCKS.remove("conv_gelu")
        sys.modules.pop("readme_blocks", None)
    assert result.code == 0, result.err
    assert "conv_gelu" in result.out


@pytest.mark.slow
def test_summary_command_runs_in_a_fresh_process():
    """The README's main command, as a user runs it (its speed: bench/latency.py)."""
    completed = subprocess.run(
        [sys.executable, "cli.py", "build", "specs/squeezenet_v11.yaml", "--summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "Total params: 726,474" in completed.stdout


def test_readme_quotes_the_generated_results():
    results = ROOT / "results" / "mnist.md"
    table = "\n".join(line for line in results.read_text().splitlines() if line.startswith("|"))
    readme = (ROOT / "README.md").read_text()
    assert f"-->\n{table}\n<!-- results:end -->" in readme, "run `make reproduce`"


def test_readme_states_every_limit():
    """The README's Limits table quotes netbuilder/limits.py; a changed limit must show there."""
    from netbuilder import limits

    section = (ROOT / "README.md").read_text().split("## Limits")[1].split("\n## ")[0]
    for value in (
        limits.MAX_SPEC_BYTES,
        limits.MAX_YAML_DEPTH,
        limits.MAX_YAML_NODES,
        limits.MAX_LAYERS,
        limits.MAX_INTEGER,
        limits.MAX_IMAGE_PIXELS,
    ):
        assert f"{value:,}" in section or str(value) in section, value
    for size in (limits.MAX_WEIGHT_BYTES, limits.MAX_ACTIVATION_BYTES):
        assert f"{size / 2**20:,.0f} MB" in section


def readme_specs() -> list[str]:
    """Every spec shown in the README: a YAML block with `layers:`, or one that `extends`."""
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    return [block for block in blocks if block.startswith(("name:", "extends:"))]


@pytest.mark.parametrize("index", range(len(readme_specs())))
def test_readme_spec_examples_build_and_run(index: int, tmp_path) -> None:
    """Each example is written beside the bundled specs, which an `extends` may name."""
    import torch

    from netbuilder import build_model, read_spec

    for bundled in SPECS:
        (tmp_path / bundled.name).symlink_to(bundled)
    path = tmp_path / "example.yaml"
    path.write_text(readme_specs()[index])
    spec = read_spec(path)
    model = build_model(spec)
    assert model.eval()(torch.zeros(2, *spec.input_shape)).shape == (2, spec.num_classes)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter without netbuilder's dependencies, as a fresh machine's `python` is."""
    folder = tmp_path_factory.mktemp("bare")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")],
        check=True,
        timeout=120,
    )
    return folder / "venv" / "bin" / "python"


@pytest.mark.slow
def test_cli_py_started_without_the_dependencies_runs_in_the_checkouts_venv(bare_python):
    """The README's first command, run by a plain `python`, finds `.venv` by itself."""
    done = subprocess.run(
        [str(bare_python), "cli.py", "build", "specs/model5.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "NETBUILDER_RELAUNCHED"},
    )
    assert done.returncode == 0, done.stderr
    assert "built model5" in done.stdout


@pytest.mark.slow
def test_cli_py_without_a_venv_says_what_to_run(bare_python, tmp_path: Path):
    (tmp_path / "cli.py").write_text((ROOT / "cli.py").read_text())
    done = subprocess.run(
        [str(bare_python), str(tmp_path / "cli.py"), "build", "x.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "run `make setup`" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build"], "error: netbuilder build: the following arguments are required: spec"),
        (
            ["build", "x.yaml", "--format", "xml"],
            "error: netbuilder build: argument --format: invalid choice: 'xml'",
        ),
        (["frobnicate"], "error: netbuilder: argument COMMAND: invalid choice: 'frobnicate'"),
        (["train", "x.yaml", "--epochs", "many"], "error: netbuilder train: argument --epochs"),
    ],
)
def test_a_refused_command_line_is_one_line_without_the_usage_block(run_cli, args, message):
    result = run_cli(*args)
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith(message)


def test_input_sizes_are_bounded_in_number(run_cli):
    sizes = [arg for size in range(8, 48) for arg in ("--input-size", str(size))]
    result = run_cli("build", str(ROOT / "specs" / "model5.yaml"), *sizes)
    assert result.code == 2 and "40 --input-size values; the limit is 32" in result.err


def test_the_readme_python_example_runs_as_written(monkeypatch):
    """The Python API block, executed: it must keep working as the README shows it."""
    block = re.search(
        r"```python\nimport netbuilder\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL
    )
    assert block is not None
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec("import netbuilder\n" + block.group(1), namespace)  # the README's own example
    assert namespace["spec"].input_shape == (1, 28, 28)
