"""Choosing a model as a user expects: `charlab models` lists every registered model, `--model NAME`
alone starts from NAME's preset, `--preset P --model NAME` keeps P's training settings with NAME's
model settings, and an error about a setting the user did not type says where its value came from."""

from __future__ import annotations

import json

import pytest
import torch

from charlab.cli.main import main
from charlab.config import load_preset
from charlab.models.registry import load_all
from charlab.rundir import CONFIG

MODEL_NAMES = sorted(load_all())
FAST_MODELS = {"mlp"}  # the rest train 50 steps on names in the full suite only


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def saved_config(run) -> dict:
    return json.loads((run / CONFIG).read_text())


def test_models_json_lists_every_registered_model(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] and sorted(r["model"] for r in rows) == MODEL_NAMES
    by_name = {r["model"]: r for r in rows}
    assert by_name["mlp"]["kind"] == "window" and by_name["lstm"]["kind"] == "sequence"
    assert by_name["bigram-counts"]["kind"] == "counts" and by_name["bigram-counts"]["parameters"] == 0
    assert by_name["mlp"]["parameters"] == 11_897  # the lecture's MLP on names (README "Benchmark")
    assert by_name["lstm"]["block_size"] == 16  # the longest name + 1
    for row in rows:
        assert row["preset"] == row["model"] and row["description"]


def test_models_text_is_a_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in MODEL_NAMES:
        assert f"\n{name} " in out


@pytest.mark.parametrize("model", [m if m in FAST_MODELS else pytest.param(m, marks=pytest.mark.slow)
                                   for m in MODEL_NAMES])
def test_model_alone_trains_with_its_own_preset(model, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", model, "--steps", "50", "--out", str(run), "--samples", "2", "--json"]) == 0, \
        capsys.readouterr().err
    saved = saved_config(run)
    own_model, own_train = load_preset(model)
    assert saved["model"]["model"] == model
    assert saved["model"]["n_embd"] == own_model.n_embd and saved["train"]["optimizer"] == own_train.optimizer


def test_preset_and_model_keep_the_preset_training_and_the_model_sizes(tmp_path, capsys, write_words):
    data = write_words(["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"] * 5)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--preset", "lstm", "--model", "mlp", "--steps", "4",
                 "--eval-interval", "2", "--out", str(run), "--samples", "0", "--json"]) == 0, capsys.readouterr().err
    saved = saved_config(run)
    lstm_train, mlp_model = load_preset("lstm")[1], load_preset("mlp")[0]
    assert saved["train"]["optimizer"] == lstm_train.optimizer == "adamw"
    assert saved["train"]["lr"] == lstm_train.lr
    assert saved["model"]["model"] == "mlp" and saved["model"]["init"] == mlp_model.init
    assert saved["model"]["block_size"] == mlp_model.block_size


@pytest.mark.parametrize("flags, says", [
    (["--model", "transformer", "--n-embd", "10"], "--n-head 4 comes from preset transformer"),
    (["--preset", "best", "--model", "mlp"], "--length-buckets 16 comes from preset best"),
])
def test_an_error_about_a_setting_not_typed_says_where_it_came_from(flags, says, tmp_path, capsys):
    assert main(["train", *flags, "--steps", "1", "--out", str(tmp_path / "run"), "--samples", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err


def test_an_error_about_typed_settings_adds_nothing(tmp_path, capsys):
    assert main(["train", "--model", "transformer", "--n-embd", "10", "--n-head", "4", "--steps", "1",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--n-embd (10) must be divisible by --n-head (4)" in err and "comes from" not in err

