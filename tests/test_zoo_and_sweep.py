"""The model zoo page stays in step with specs/ and results/; a sweep trains one run per grid
point and writes its table and plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, tiny_spec, write_spec
from netbuilder.errors import NetbuilderError
from netbuilder.report.zoo import zoo_page
from netbuilder.training.run import run_training
from netbuilder.training.sweep import grid, run_sweep


def test_zoo_page_is_current() -> None:
    page = zoo_page(ROOT / "specs", ROOT / "results" / "mnist.json")
    assert (ROOT / "docs" / "zoo.md").read_text(encoding="utf-8") == page, "run `make zoo`"
    for spec in (ROOT / "specs").glob("*.yaml"):
        assert f"[{spec.stem}](../specs/{spec.name})" in page


def test_zoo_shows_deploy_figures_and_a_diagram_per_spec(tmp_path: Path) -> None:
    (tmp_path / "mnist.json").write_text("{}")
    row = {
        "spec": "model5",
        "fp32_acc": 99.43,
        "int8_acc": 99.41,
        "int8_kib": 33.3,
        "ort_int8_b1_ms": 0.123,
    }
    (tmp_path / "deploy.json").write_text(json.dumps([row]))
    page = zoo_page(ROOT / "specs", tmp_path / "mnist.json")
    model5 = next(line for line in page.splitlines() if line.startswith("| [model5]"))
    assert "99.41% (99.43%)" in model5 and "33.3 KiB" in model5 and "0.123 ms" in model5
    specs = list((ROOT / "specs").glob("*.yaml"))
    assert page.count("```mermaid\nflowchart TD") == len(specs)


def test_readme_links_the_zoo() -> None:
    assert "(docs/zoo.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_grid_is_the_product_of_the_sweeps() -> None:
    assert grid(["params.width=0.5,1.0", "train.seed=1,2"]) == [
        ["params.width=0.5", "train.seed=1"],
        ["params.width=0.5", "train.seed=2"],
        ["params.width=1.0", "train.seed=1"],
        ["params.width=1.0", "train.seed=2"],
    ]
    with pytest.raises(NetbuilderError, match="--sweep expects KEY=V1,V2"):
        grid(["params.width"])


@pytest.mark.slow
def test_a_sweep_trains_each_point_and_reports(run_cli, tmp_path: Path) -> None:
    data = tiny_spec(train={"epochs": 1})
    data["params"] = {"width": 4}
    data["layers"][0]["conv_bn"]["out_channels"] = "${width}"
    spec = write_spec(tmp_path / "spec.yaml", data)
    result = run_cli(
        "train",
        str(spec),
        "--sweep",
        "params.width=2,8",
        "--out",
        str(tmp_path / "sweep"),
        "--no-progress",
    )
    assert result.code == 0, result.err
    rows = list(csv.DictReader((tmp_path / "sweep" / "sweep.csv").open()))
    assert [row["point"] for row in rows] == ["params.width=2", "params.width=8"]
    assert int(rows[0]["params"]) < int(rows[1]["params"])
    assert (tmp_path / "sweep" / "sweep.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "sweep" / "params.width=8" / "last.pt").is_file()
    assert "params.width=8" in result.out


def width_spec(tmp_path: Path, **train: Any) -> Path:
    data = tiny_spec(train={"epochs": 1, **train})
    data["params"] = {"width": 4}
    data["layers"][0]["conv_bn"]["out_channels"] = "${width}"
    return write_spec(tmp_path / "spec.yaml", data)


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ("params.widht=2,8", "the spec has no param 'widht'; did you mean 'width'?"),
        ("params.width=2,2", "points 1 (params.width=2) and 2 (params.width=2) give the same"),
        ("params.width=2,0x2", "give the same spec"),  # YAML reads 0x2 as 2
        ("params.width=2,2000000", "one image's layer outputs take"),  # beyond the limit
    ],
)
def test_every_point_is_planned_before_any_trains(
    run_cli, tmp_path: Path, sweep: str, message: str
) -> None:
    spec = width_spec(tmp_path)
    result = run_cli(
        "train", str(spec), "--sweep", sweep, "--out", str(tmp_path / "sweep"), "--no-progress"
    )
    assert result.code == 2 and message in result.err, result.err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_a_killed_sweep_continues_with_resume(tmp_path: Path) -> None:
    spec = width_spec(tmp_path, epochs=2)
    calls: list[tuple[str, bool]] = []

    def killed_in_the_second_point(spec, run_dir, **options):
        calls.append((run_dir.name, options["resume"]))
        if len(calls) == 2:
            with pytest.raises(KeyboardInterrupt):
                run_training(spec, run_dir, **options, on_epoch=_interrupt)
            raise KeyboardInterrupt
        return run_training(spec, run_dir, **options)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(
            str(spec),
            [],
            ["params.width=2,4,8"],
            str(tmp_path / "sweep"),
            run=killed_in_the_second_point,
            progress=False,
        )
    calls.clear()
    folder = run_sweep(
        str(spec),
        [],
        ["params.width=2,4,8"],
        str(tmp_path / "sweep"),
        run=lambda spec, run_dir, **o: (
            calls.append((run_dir.name, o["resume"])) or run_training(spec, run_dir, **o)
        ),
        resume=True,
        progress=False,
    )
    assert calls == [("params.width=2", True), ("params.width=4", True), ("params.width=8", False)]
    rows = list(csv.DictReader((folder / "sweep.csv").open()))
    assert [row["epochs_run"] for row in rows] == ["2", "2", "2"]


def _interrupt(row: dict[str, Any]) -> None:
    raise KeyboardInterrupt


@pytest.mark.slow
def test_a_diverging_point_is_recorded_and_the_sweep_goes_on(run_cli, tmp_path: Path) -> None:
    spec = width_spec(tmp_path)
    result = run_cli(
        "train",
        str(spec),
        "--sweep",
        "train.optimizer.lr=1e30,0.1",
        "--out",
        str(tmp_path / "sweep"),
        "--no-progress",
    )
    assert result.code == 0, result.err
    rows = list(csv.DictReader((tmp_path / "sweep" / "sweep.csv").open()))
    assert rows[0]["final_acc"] == "diverged"
    assert float(rows[1]["final_acc"]) > 0
    assert "training diverged" in (tmp_path / "sweep" / "sweep.md").read_text()
