"""The model zoo page stays in step with specs/ and results/; a sweep trains one run per grid
point and writes its table and plot."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import ROOT, tiny_spec, write_spec
from netbuilder.errors import NetbuilderError
from netbuilder.report.zoo import zoo_page
from netbuilder.training.sweep import grid


def test_zoo_page_is_current() -> None:
    page = zoo_page(ROOT / "specs", ROOT / "results" / "mnist.json")
    assert (ROOT / "docs" / "zoo.md").read_text(encoding="utf-8") == page, "run `make zoo`"
    for spec in (ROOT / "specs").glob("*.yaml"):
        assert f"[{spec.stem}](../specs/{spec.name})" in page


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
