"""Any word list works with any preset: a sequence model takes its block_size from the data (the
longest item + 1) unless --block-size is given, a window model keeps its preset's context, and the run
records the resolved value so that --resume and load_run rebuild the same model."""

from __future__ import annotations

import json
import random

import pytest
import torch

from charlab import api
from charlab.cli.main import main
from charlab.config import preset_names
from charlab.rundir import CONFIG, load_run

LONGEST = 30  # characters of the longest item: twice the names' longest (15)
FAST_PRESETS = {"lstm", "mlp-bn"}  # one sequence and one window preset stay in the inner loop
SMALLER = {"best": ["--n-hidden", "64", "--batch-size", "48"]}  # 3 LSTMs of 512 on 31 positions: ~50 s for 30 steps


@pytest.fixture(autouse=True)
def keep_threads():
    """`charlab train` sets the preset's thread count (best: 2); the rest of the session runs on one."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def long_items(write_words):
    rng = random.Random(0)
    items = ["".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(3, LONGEST))) for _ in range(200)]
    items[7] = "q" * LONGEST
    return write_words(items, "long.txt")


def saved_block_size(run) -> int:
    return json.loads((run / CONFIG).read_text())["model"]["block_size"]


@pytest.mark.parametrize("preset", [p if p in FAST_PRESETS else pytest.param(p, marks=pytest.mark.slow)
                                    for p in preset_names()])
def test_every_preset_trains_on_a_list_with_30_character_items(preset, long_items, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(long_items), "--preset", preset, "--steps", "30", "--eval-interval", "15",
                 "--out", str(run), "--samples", "2", "--json", *SMALLER.get(preset, [])]) == 0, capsys.readouterr().err
    loaded = load_run(run)
    expected = LONGEST + 1 if loaded.model.example_kind == "sequence" else api.resolve_config(preset)[0].block_size
    assert loaded.model_cfg.block_size == saved_block_size(run) == expected


def test_resume_keeps_the_block_size_from_the_data(long_items, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--data", str(long_items), "--model", "gru", "--n-hidden", "16", "--n-embd", "8", "--samples", "0",
            "--json"]
    assert main(["train", *args, "--steps", "20", "--eval-interval", "10", "--out", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--steps", "30", "--json"]) == 0, capsys.readouterr().err
    assert saved_block_size(run) == LONGEST + 1
    assert load_run(run).model.block_size == LONGEST + 1


def test_a_given_block_size_is_kept_and_a_too_small_one_is_a_clear_error(long_items, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["train", "--data", str(long_items), "--model", "rnn", "--n-hidden", "16", "--steps", "5",
              "--eval-interval", "5", "--samples", "0", "--json"]
    assert main([*common, "--block-size", "40", "--out", str(run)]) == 0
    assert saved_block_size(run) == 40
    capsys.readouterr()
    assert main([*common, "--block-size", "16", "--out", str(tmp_path / "small")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--block-size to at least 31" in err and "comes from" not in err


def test_window_models_keep_the_preset_context(long_items):
    result = api.train(data=long_items, model="wavenet", steps=2, eval_interval=2, n_samples=0)
    assert result.model_cfg.block_size == api.resolve_config("wavenet")[0].block_size == 8
