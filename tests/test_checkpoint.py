"""Tests for netbuilder.checkpoint: safe and checked loading, fingerprints, resume checks."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import tiny_spec, write_spec
from netbuilder import read_spec
from netbuilder.errors import NetbuilderError
from netbuilder.training.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    save_checkpoint,
    spec_fingerprint,
)
from netbuilder.training.run import run_training

SPEC = tiny_spec(train={"epochs": 1, "batch_size": 64})


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch synthetic run; tests copy what they change."""
    folder = tmp_path_factory.mktemp("checkpoint")
    spec = read_spec(write_spec(folder / "spec.yaml", SPEC))
    run_training(spec, folder / "run", progress=False)
    return folder / "run"


def minimal_payload(**extra: Any) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "model": {"w": torch.ones(2)},
        "epoch": 1,
        "spec": SPEC,
        "spec_name": "tiny",
        "fingerprint": spec_fingerprint(SPEC),
        "train_config": {},
        "class_names": [str(i) for i in range(10)],
        "history": [],
        **extra,
    }


def test_checkpoint_round_trips_with_weights_only(tmp_path: Path) -> None:
    payload = minimal_payload(rng={"torch": torch.get_rng_state()})
    save_checkpoint(tmp_path / "c.pt", payload)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(loaded["rng"]["torch"], payload["rng"]["torch"])
    assert loaded["spec"] == SPEC


def test_run_checkpoint_holds_what_resume_needs(trained_run: Path) -> None:
    payload = load_checkpoint(trained_run / "last.pt")
    assert payload["epoch"] == 1 and payload["spec_name"] == "tiny"
    assert {"optimizer", "scheduler", "rng", "history", "train_config"} <= payload.keys()
    assert payload["rng"]["ranks"][0]["torch"].dtype == torch.uint8  # one process: one rank
    assert payload["rng"]["loader"] == {"seed": 1, "next_epoch": 2}
    assert payload["spec"]["train"]["optimizer"]["momentum"] == 0.9  # the resolved config
    assert payload["class_names"] == [str(i) for i in range(10)]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_checkpoint_is_a_user_error_naming_the_file(
    trained_run: Path, tmp_path: Path, damage: str
) -> None:
    good = (trained_run / "last.pt").read_bytes()
    content = {
        "garbage": b"not a checkpoint at all",
        "truncated": good[: len(good) // 2],
        "empty": b"",
    }[damage]
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(NetbuilderError, match="cannot read checkpoint") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_foreign_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(NetbuilderError, match="not a netbuilder checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(NetbuilderError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_fingerprint_covers_the_architecture_only() -> None:
    base = spec_fingerprint(SPEC)
    renamed = {**copy.deepcopy(SPEC), "name": "other", "train": {"epochs": 9}}
    assert spec_fingerprint(renamed) == base
    assert spec_fingerprint({**SPEC, "description": "notes"}) == base
    assert spec_fingerprint({**SPEC, "blocks": {"m": {"layers": [{"relu": {}}]}}}) != base
    wider = copy.deepcopy(SPEC)
    wider["layers"][0]["conv_bn"]["out_channels"] = 8
    assert spec_fingerprint(wider) != base
    assert spec_fingerprint({**SPEC, "num_classes": 5}) != base


def test_resume_with_another_spec_names_both(trained_run: Path, tmp_path: Path) -> None:
    data = copy.deepcopy(SPEC)
    data["name"] = "wider"
    data["layers"][0]["conv_bn"]["out_channels"] = 8
    spec = read_spec(write_spec(tmp_path / "wider.yaml", data))
    with pytest.raises(NetbuilderError, match=r"'tiny'.*'wider'"):
        run_training(spec, trained_run, resume=True, progress=False)


def test_resume_without_a_checkpoint(tmp_path: Path) -> None:
    spec = read_spec(write_spec(tmp_path / "spec.yaml", SPEC))
    with pytest.raises(NetbuilderError, match="nothing to resume"):
        run_training(spec, tmp_path / "empty", resume=True, progress=False)
