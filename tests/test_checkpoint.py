"""Checkpoints: lossless round trip without pickle, atomic last/best, the non-finite guard, signals."""

from __future__ import annotations

import json
import math
import os
import signal

import pytest
import torch
from safetensors.torch import load

from charlab import api
from charlab.training.checkpoint import BEST, LAST, Checkpointer, checkpoint_path, decode, encode, load_checkpoint
from charlab.cli.main import main
from charlab.config import ModelConfig, TrainConfig
from charlab.data import Vocab, build_examples
from charlab.training.events import Observer
from charlab.training.nonfinite import NONFINITE_EXIT, NonFinite, all_finite
from charlab.models import build_model
from charlab.training.loop import Trainer
from charlab.training.safe_fit import fit_safely
from charlab.training.state import capture

ITEMS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail"]
SEED = 7
HEADER_LEN_BYTES = 8  # safetensors: a little-endian u64 header length, then the JSON header


def make_trainer(steps=40, eval_interval=10, optimizer="sgd", lr=0.1, observers=(), checkpoint_interval=0,
                 **model_overrides) -> Trainer:
    vocab = Vocab.from_items(ITEMS)
    model_cfg = ModelConfig(vocab_size=vocab.size, n_hidden=16, **model_overrides)
    train_cfg = TrainConfig(steps=steps, batch_size=8, eval_interval=eval_interval, optimizer=optimizer, lr=lr,
                            seed=SEED, checkpoint_interval=checkpoint_interval)
    model = build_model(model_cfg, torch.Generator().manual_seed(SEED))
    train = build_examples(ITEMS[:8], vocab, model.example_kind, model_cfg.block_size)
    dev = build_examples(ITEMS[8:], vocab, model.example_kind, model_cfg.block_size)
    return Trainer(model, train, dev, train_cfg, observers)


def assert_state_equal(a, b) -> None:
    """Nested dicts/lists of tensors and plain values, tensors compared with torch.equal."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert {str(k) for k in a} == {str(k) for k in b}
        for k in a:
            assert_state_equal(a[k], b[k] if k in b else b[int(k)])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_state_equal(x, y)
    elif isinstance(a, float) and math.isinf(a):
        assert a == b
    else:
        assert a == b


def split(data: bytes) -> tuple[dict, dict]:
    """safetensors bytes -> (tensors, the JSON state in the metadata), read without charlab."""
    n = int.from_bytes(data[:HEADER_LEN_BYTES], "little")
    meta = json.loads(data[HEADER_LEN_BYTES:HEADER_LEN_BYTES + n])["__metadata__"]
    return load(data), json.loads(meta["state"])


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_encode_decode_round_trip_is_lossless(optimizer):
    trainer = make_trainer(optimizer=optimizer, lr=0.01)
    trainer.fit()
    sd = capture(trainer, with_losses=True)
    assert_state_equal(sd, decode(*split(encode(sd))))


def test_checkpointer_writes_last_at_each_eval_and_best_on_improvement(tmp_path):
    written = []
    spy = type("Spy", (Observer,), {
        "on_eval": lambda self, view, step, losses: written.append(
            (step, load_checkpoint(tmp_path / "checkpoints" / LAST)["train_state"]["step"]))})()
    trainer = make_trainer(steps=40, eval_interval=10)
    trainer.fit(last=(Checkpointer(tmp_path), spy))
    assert written == [(10, 10), (20, 20), (30, 30), (40, 40)]
    best = load_checkpoint(tmp_path / "checkpoints" / BEST)
    assert best["train_state"]["step"] == trainer.state.best_step
    last = load_checkpoint(tmp_path / "checkpoints" / LAST)
    assert last["train_state"]["losses"] == trainer.state.losses
    assert list(tmp_path.joinpath("checkpoints").glob(".*.tmp")) == []  # no temporary file left


def test_checkpoint_interval_adds_checkpoints_between_evaluations(tmp_path):
    trainer = make_trainer(steps=30, eval_interval=30, checkpoint_interval=7)
    steps = []
    saver = Checkpointer(tmp_path)
    original = saver.save
    saver.save = lambda view, best: steps.append(view.step) or original(view, best)
    trainer.fit(last=(saver,))
    assert steps == [7, 14, 21, 28, 30]


def test_non_finite_weights_are_never_written(tmp_path):
    trainer = make_trainer()
    saver = Checkpointer(tmp_path)
    saver.on_train_start(trainer.view)
    assert saver.save(trainer.view, best=True)
    before = (tmp_path / "checkpoints" / LAST).read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters())[0] = float("nan")
    assert not saver.save(trainer.view, best=True)
    assert (tmp_path / "checkpoints" / LAST).read_bytes() == before


@pytest.mark.slow
def test_a_fresh_run_removes_checkpoints_of_an_overwritten_run(tmp_path):
    api.train(out=tmp_path, preset="mlp", steps=20, eval_interval=10, n_samples=0)
    sd = load_checkpoint(checkpoint_path(tmp_path))
    assert sd["train_state"]["step"] == 20
    with pytest.raises(NonFinite):
        api.train(out=tmp_path, overwrite=True, preset="mlp", steps=20, eval_interval=10, n_samples=0,
                  observers=[_StopAt(5)], fast_path="off")  # one event per step: it stops at step 5
    assert not checkpoint_path(tmp_path).exists()  # stopped before any evaluation: nothing stale to resume


class _StopAt(Observer):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, view, step, loss):
        if step + 1 == self.step:
            view.request_stop(NonFinite(step, "test"))


def first_step_reading(trainer, char_id: int) -> int:
    """Oracle: the first step whose batch has ``char_id`` in an input window, drawn as fit draws."""
    g = torch.Generator().manual_seed(trainer.cfg.seed + 1)
    x = trainer.train_examples.x
    for step in range(trainer.cfg.steps):
        ix = torch.randint(0, len(x), (trainer.cfg.batch_size,), generator=g)
        if bool((x[ix] == char_id).any()):
            return step
    raise AssertionError("the character never appears")


@pytest.mark.parametrize("char", ["v", "b", "p"])
def test_guard_finds_the_first_non_finite_step_and_module(char):
    """An infinite embedding row: the loss turns NaN at the first batch that reads the character,
    which the guard finds by replay (not at its check, up to 100 steps later), naming the Embedding."""
    trainer = make_trainer(steps=300, eval_interval=300, norm="none", init="naive")
    char_id = Vocab.from_items(ITEMS).stoi[char]
    with torch.no_grad():
        trainer.model.layers[0].weight[char_id] = float("inf")
    with pytest.raises(NonFinite) as stopped:
        fit_safely(trainer, None)
    expected = first_step_reading(trainer, char_id)
    assert stopped.value.step == expected
    assert f"step {expected} " in str(stopped.value) and "layers.0 (Embedding)" in str(stopped.value)
    assert stopped.value.exit_code == NONFINITE_EXIT


def test_absurd_learning_rate_stops_with_one_line_and_keeps_last_good_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--preset", "mlp", "--activation", "none", "--lr", "1e6", "--steps", "50",
               "--eval-interval", "1", "--out", str(run), "--samples", "0", "--json"])
    out, err = capsys.readouterr()
    assert rc == NONFINITE_EXIT and out == ""
    assert len(err.strip().splitlines()) == 1 and "non-finite loss at step" in err
    assert "first non-finite output: layers." in err and "last good checkpoint" in err
    sd = load_checkpoint(checkpoint_path(run))
    assert all_finite(sd["model"].values()) and sd["train_state"]["step"] < 50


def test_signal_handlers_are_restored_after_training(tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    api.train(out=tmp_path, preset="mlp", steps=10, eval_interval=5, n_samples=0)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_second_signal_stops_at_once_and_handlers_are_restored(tmp_path):
    before = signal.getsignal(signal.SIGINT)

    class Twice(Observer):
        def on_step_end(self, view, step, loss):
            if view.chunk_start <= 3 <= step:  # the event that covers step 3
                os.kill(os.getpid(), signal.SIGINT)  # graceful: finish the step
                os.kill(os.getpid(), signal.SIGINT)  # insisting: stop now

    with pytest.raises(KeyboardInterrupt):
        api.train(out=tmp_path, preset="mlp", steps=20, eval_interval=10, n_samples=0, observers=[Twice()])
    assert signal.getsignal(signal.SIGINT) == before
