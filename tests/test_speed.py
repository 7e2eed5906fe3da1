"""`train.amp: auto` / `train.channels_last: auto`: the candidates, the measurement (which
must not disturb the run's random streams), the record in the run folder, and a resume that
keeps the first run's choice."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from conftest import tiny_spec, write_spec
from netbuilder import read_spec
from netbuilder.errors import NetbuilderError
from netbuilder.spec.config import TrainConfig
from netbuilder.training import speed
from netbuilder.training.checkpoint import load_checkpoint
from netbuilder.training.run import run_training
from netbuilder.training.speed import Candidate, SpeedChoice

CPU = torch.device("cpu")
AUTO: dict[str, Any] = {"epochs": 1, "amp": "auto", "channels_last": "auto"}


def labels(config: TrainConfig, device: torch.device = CPU) -> list[str]:
    return [candidate.label for candidate in speed.candidates(config, device)]


def test_candidates_time_only_what_auto_stands_for() -> None:
    config = TrainConfig()
    both = replace(config, amp="auto", channels_last="auto")
    assert labels(both) == ["fp32", "fp32 channels_last", "bf16 channels_last"]
    assert labels(replace(config, amp="auto", channels_last=True)) == [
        "fp32 channels_last",
        "bf16 channels_last",
    ]
    assert labels(replace(config, amp="none", channels_last="auto")) == [
        "fp32",
        "fp32 channels_last",
    ]
    assert labels(replace(config, amp="bf16", channels_last="auto")) == [
        "bf16",
        "bf16 channels_last",
    ]
    assert not speed.is_measured(replace(config, amp="bf16", channels_last=True))


def test_cuda_candidates_add_fp16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    both = replace(TrainConfig(), amp="auto", channels_last="auto")
    assert labels(both, torch.device("cuda")) == [
        "fp32",
        "fp32 channels_last",
        "bf16 channels_last",
        "fp16 channels_last",
    ]


def test_the_fastest_candidate_is_kept() -> None:
    slow, fast = Candidate("none", False), Candidate("bf16", True)
    choice = SpeedChoice({slow: 100.0, fast: 250.0})
    assert choice.best == fast
    assert choice.describe() == (
        "speed: bf16 channels_last kept (measured img/s: fp32 100, bf16 channels_last 250)"
    )


def test_measuring_leaves_the_random_streams_alone(tmp_path: Path) -> None:
    spec = read_spec(write_spec(tmp_path / "spec.yaml", tiny_spec(dropout=0.2, train=AUTO)))
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    choice = speed.measure(spec, spec.train, CPU)
    assert torch.equal(torch.rand(3), expected)
    assert [c.label for c in choice.rates] == labels(spec.train)
    assert all(rate > 0 for rate in choice.rates.values())


def test_an_auto_run_records_its_choice_and_trains_as_that_setting_would(tmp_path: Path) -> None:
    spec = read_spec(write_spec(tmp_path / "spec.yaml", tiny_spec(dropout=0.2, train=AUTO)))
    auto = run_training(spec, tmp_path / "auto", progress=False)
    chosen = json.loads((tmp_path / "auto" / "speed.json").read_text())
    assert set(chosen["images_per_s"]) == set(labels(spec.train))
    written = yaml.safe_load((tmp_path / "auto" / "spec.yaml").read_text())["train"]
    kept = Candidate(written["amp"], written["channels_last"])
    assert kept.label == chosen["chosen"]
    assert auto.config.amp == kept.amp and auto.config.channels_last is kept.channels_last

    fixed = {**AUTO, "amp": kept.amp, "channels_last": kept.channels_last}
    same = read_spec(write_spec(tmp_path / "fixed.yaml", tiny_spec(dropout=0.2, train=fixed)))
    plain = run_training(same, tmp_path / "fixed", progress=False)
    assert not (tmp_path / "fixed" / "speed.json").exists()
    assert plain.history[0]["train_loss"] == auto.history[0]["train_loss"]


def test_a_resumed_run_keeps_the_first_runs_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = read_spec(write_spec(tmp_path / "spec.yaml", tiny_spec(train=AUTO)))
    forced = SpeedChoice({Candidate("none", False): 1.0, Candidate("bf16", True): 2.0})
    monkeypatch.setattr(speed, "measure", lambda *args: forced)
    run_training(spec, tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train_config"]["amp"] == "bf16"

    def refuse(*args: object) -> SpeedChoice:
        raise AssertionError("a resume measured again")

    monkeypatch.setattr(speed, "measure", refuse)
    resumed = run_training(spec, tmp_path / "run", resume=True, progress=False)
    assert (resumed.config.amp, resumed.config.channels_last) == ("bf16", True)


def test_a_named_setting_is_not_auto() -> None:
    with pytest.raises(NetbuilderError, match=r"expected a boolean or 'auto', got 'maybe'"):
        read_spec("specs/model5.yaml", overrides=["train.channels_last=maybe"])
