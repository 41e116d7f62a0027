"""Fast paths against their oracles (no timing here: speed lives in benchmarks/).

- the hand-derived backward pass (``--fast-path eager``) against autograd (``--fast-path off``);
- the compiled, unrolled path against the eager one;
- the lecture-style reference in ``benchmarks/reference.py`` against charlab's plain loop (the
  benchmark's ratios are only fair if both run the same trajectory);
- sampling from a logit table against sampling with a forward pass per character.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import charlab.training.hand_backward as fastpath
from charlab.api import resolve_config
from charlab.data import Vocab, build_examples, read_items
from charlab.data.splits import split_items
from charlab.errors import CharlabError
from charlab.models import build_model
from charlab.inference import sample as sample_module
from charlab.inference.sample import sample_ids
from charlab.inference.window_cache import LogitTable, all_windows, worth_a_table
from charlab.training.loop import Observer, Trainer

ROOT = Path(__file__).resolve().parents[1]
LOSS_ATOL = 1e-6  # float32 rounding: the paths differ only in the order of additions
SEED = 42


@pytest.fixture(scope="module")
def names():
    items = read_items(None)
    splits = split_items(items, SEED)
    return Vocab.from_items(items), splits


def fit(names, steps, **overrides):
    vocab, splits = names
    mc, tc = resolve_config("mlp-bn", steps=steps, **{"eval_interval": max(steps // 2, 1), **overrides})
    mc.vocab_size = vocab.size
    model = build_model(mc, torch.Generator().manual_seed(tc.seed))
    ex = {k: build_examples(splits[k], vocab, model.example_kind, mc.block_size) for k in ("train", "dev")}
    state = Trainer(model, ex["train"], ex["dev"], tc).fit()
    return torch.tensor(state.losses), model


def assert_same_run(a, b):
    losses_a, model_a = a
    losses_b, model_b = b
    assert losses_a.shape == losses_b.shape
    torch.testing.assert_close(losses_a, losses_b, atol=LOSS_ATOL, rtol=0)
    sd_b = model_b.state_dict()
    for key, value in model_a.state_dict().items():
        torch.testing.assert_close(value, sd_b[key], atol=1e-5, rtol=0, msg=key)


@pytest.mark.parametrize("overrides", [
    {},  # the lecture's mlp-bn with SGD and the step decay
    {"n_layers": 2, "n_hidden": 24, "bn_momentum": 0.1},  # several BatchNorm blocks
    {"norm": "none", "init": "fix-tanh", "n_hidden": 24},  # Linear with bias, no BatchNorm
    {"activation": "none", "n_hidden": 24, "batch_size": 8},
    {"optimizer": "adamw", "lr": 0.01, "grad_clip": 1.0, "n_hidden": 24},  # the trainer's own optimizer
])
def test_hand_derived_backward_matches_autograd(names, overrides):
    steps = 40
    assert_same_run(fit(names, steps, fast_path="off", **overrides),
                    fit(names, steps, fast_path="eager", **overrides))


def test_compiled_unrolled_path_matches_eager(names, monkeypatch):
    monkeypatch.setattr(fastpath, "UNROLL_STEPS", 2)  # a short graph compiles quickly
    overrides = {"n_hidden": 16, "eval_interval": 5}  # 5 = two compiled chunks and one eager step
    assert_same_run(fit(names, 11, fast_path="eager", **overrides),
                    fit(names, 11, fast_path="compile", **overrides))


def test_unsupported_settings_are_refused(names):
    with pytest.raises(CharlabError, match="--fast-path compile"):
        fit(names, 2, fast_path="compile", optimizer="adamw")

    class Watcher(Observer):
        def on_after_backward(self, trainer, step):
            pass

    vocab, splits = names
    mc, tc = resolve_config("mlp-bn", steps=2, fast_path="eager")
    mc.vocab_size = vocab.size
    model = build_model(mc)
    ex = build_examples(splits["dev"], vocab, "window", mc.block_size)
    with pytest.raises(CharlabError, match="on_after_backward"):
        Trainer(model, ex, ex, tc, [Watcher()])


def load_reference():
    spec = importlib.util.spec_from_file_location("reference", ROOT / "benchmarks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reference"] = module
    spec.loader.exec_module(module)
    return module


def test_reference_follows_charlab_trajectory(names):
    reference = load_reference()
    steps = 30
    stoi, _, data = reference.load_data(SEED)
    _, _, ref_losses, _ = reference.train(steps, SEED, data, len(stoi))
    losses, _ = fit(names, steps, fast_path="off")
    torch.testing.assert_close(torch.tensor(ref_losses), losses, atol=1e-5, rtol=0)
    vocab, splits = names
    ours = build_examples(splits["train"], vocab, "window", reference.BLOCK_SIZE)
    assert torch.equal(ours.x, data["train"][0]) and torch.equal(ours.y, data["train"][1])


def test_all_windows_enumerates_base_v_digits():
    windows = all_windows(3, 2)  # (9, 2)
    assert windows.tolist() == [[a, b] for a in range(3) for b in range(3)]


def small_trained_looking_model(names):
    vocab, _ = names
    mc, _ = resolve_config("mlp-bn", n_hidden=16)
    mc.vocab_size = vocab.size
    model = build_model(mc, torch.Generator().manual_seed(SEED))
    with torch.no_grad():  # running statistics away from (0, 1), as after training
        model.layers[3].running_mean.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    return model


def test_table_logits_are_the_model_logits(names):
    model = small_trained_looking_model(names)
    context = torch.randint(0, model.vocab_size, (50, 5), generator=torch.Generator().manual_seed(3))
    for t in range(context.shape[1] + 1):
        with torch.no_grad():
            direct = model.eval().next_token_logits(context[:, :t])  # (50, V)
        torch.testing.assert_close(LogitTable(model)(context[:, :t]), direct, atol=1e-5, rtol=0)


def test_table_sampling_draws_the_direct_samples(names, monkeypatch):
    model = small_trained_looking_model(names)
    n = 5000  # more than one SAMPLE_CHUNK, so the table is reused across chunks
    assert worth_a_table(model, n) and not worth_a_table(model, 10)

    def draw():
        return sample_ids(model, n, torch.Generator().manual_seed(7), temperature=0.9, top_k=20, prefix=[1])

    with_table = draw()
    monkeypatch.setattr(sample_module, "worth_a_table", lambda model, n: False)
    direct = draw()
    assert with_table == direct
    assert len({tuple(row) for row in direct}) > n // 2  # real samples, not one repeated row
