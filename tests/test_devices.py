"""--device: resolved to an available device, recorded in the run; a missing device is a one-line
error with nothing written."""

from __future__ import annotations

import json

import pytest
import torch

import charlab
from charlab.cli.main import main
from charlab.training.devices import available, resolve
from charlab.errors import CharlabError


def expected_auto() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def test_auto_picks_the_best_available():
    assert resolve(None) == resolve("auto") == expected_auto()
    assert resolve("cpu") == "cpu"


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_named_device_must_exist(name):
    if available(name):
        assert resolve(name) == name
    else:
        with pytest.raises(CharlabError, match=f"--device {name}"):
            resolve(name)


def test_run_records_the_device_and_cpu_is_unchanged(tmp_path):
    torch.set_num_threads(1)
    settings = {"steps": 20, "n_hidden": 16, "eval_interval": 100, "n_samples": 3}
    auto = charlab.train(out=tmp_path / "auto", **settings)
    cpu = charlab.train(device="cpu", **settings)
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["train"]["device"] == expected_auto()
    if expected_auto() == "cpu":
        assert auto.losses == cpu.losses and auto.samples == cpu.samples


def test_missing_device_writes_nothing(tmp_path, capsys):
    missing = next((d for d in ("cuda", "mps") if not available(d)), None)
    if missing is None:
        return  # every device exists here: nothing to refuse
    out = tmp_path / "run"
    assert main(["train", "--device", missing, "--steps", "1", "--out", str(out)]) == 2
    assert not out.exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
