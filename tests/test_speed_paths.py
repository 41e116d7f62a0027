"""Fast paths against their oracles (no timing here: speed lives in benchmarks/).

- the hand-derived backward pass (``--fast-path eager``) against autograd (``--fast-path off``), in
  float64 (see ``test_hand_derived_backward_matches_autograd`` for why);
- the compiled, unrolled path against the eager one;
- the lecture-style reference in ``benchmarks/reference.py`` against charlab's plain loop (the
  benchmark's ratios are only fair if both run the same trajectory);
- sampling from the next-character cache (``inference/window_cache.py``) against sampling with a
  forward pass per character.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import charlab.training.hand_backward as hand_backward
from charlab.api import resolve_config
from charlab.data import Vocab, build_examples, read_items
from charlab.data.splits import split_items
from charlab.errors import CharlabError
from charlab.models import build_model
from charlab.inference import sample as sample_module
from charlab.inference.sample import sample_ids
from charlab.inference.window_cache import NextCharCache, all_windows, worth_caching
from charlab.training.events import Observer
from charlab.training.loop import Trainer

ROOT = Path(__file__).resolve().parents[1]
LOSS_ATOL = 1e-6  # a few float32 ulps at a loss of ~3: the recorded losses are float32
WEIGHT_ATOL = 1e-5  # float32 rounding of a few dozen SGD steps; in float64 a million times more than needed
SEED = 42


@pytest.fixture(scope="module")
def names():
    items = read_items(None)
    splits = split_items(items, SEED)
    return Vocab.from_items(items), splits


def fit(names, steps, dtype=torch.float32, observers=(), **overrides):
    vocab, splits = names
    mc, tc = resolve_config("mlp-bn", steps=steps, **{"eval_interval": max(steps // 2, 1), **overrides})
    mc.vocab_size = vocab.size
    model = build_model(mc, torch.Generator().manual_seed(tc.seed)).to(dtype)
    ex = {k: build_examples(splits[k], vocab, model.example_kind, mc.block_size) for k in ("train", "dev")}
    state = Trainer(model, ex["train"], ex["dev"], tc, observers).fit()
    return torch.tensor(state.losses), model


def assert_same_run(a, b):
    losses_a, model_a = a
    losses_b, model_b = b
    assert losses_a.shape == losses_b.shape
    torch.testing.assert_close(losses_a, losses_b, atol=LOSS_ATOL, rtol=0)
    sd_b = model_b.state_dict()
    for key, value in model_a.state_dict().items():
        torch.testing.assert_close(value, sd_b[key], atol=WEIGHT_ATOL, rtol=0, msg=key)


@pytest.mark.parametrize("overrides", [
    {},  # the lecture's mlp-bn with SGD and the step decay
    {"n_layers": 2, "n_hidden": 24, "bn_momentum": 0.1},  # several BatchNorm blocks
    {"norm": "none", "init": "fix-tanh", "n_hidden": 24},  # Linear with bias, no BatchNorm
    {"activation": "none", "n_hidden": 24, "batch_size": 8},
    {"optimizer": "adamw", "lr": 0.01, "grad_clip": 1.0, "n_hidden": 24},  # the trainer's own optimizer
])
def test_hand_derived_backward_matches_autograd(names, overrides):
    """In float64, so the tolerances hold on any CPU. The two paths add in different orders, so a
    gradient that is zero in exact arithmetic comes out as rounding noise, and the noise differs
    between paths and between CPUs (vector widths). Such components exist: the hidden Linear feeds a
    BatchNorm, whose input gradient sums to zero over the batch, so the Linear's weight gradient is
    zero along any input that is the same for the whole batch. SGD moves a weight by lr * noise,
    harmless; AdamW divides by sqrt(v) + eps, so noise of ~1e-8 (float32) becomes a step of ~lr/2
    whose sign is the noise's. In float64 the noise is ~1e-16, AdamW's step lr * 1e-16 / eps ~1e-10,
    at most ~4e-9 after 40 steps: far inside WEIGHT_ATOL, and the losses are then equal up to the
    float32 rounding they are recorded with (LOSS_ATOL)."""
    steps = 40
    assert_same_run(fit(names, steps, torch.float64, fast_path="off", **overrides),
                    fit(names, steps, torch.float64, fast_path="eager", **overrides))


@pytest.mark.slow  # a cold torch.compile takes ~30-90 s
def test_compiled_unrolled_path_matches_eager(names, monkeypatch):
    """float32 is enough here: both paths run SGD, which moves a weight by lr times the gradient's
    rounding difference, never more (no AdamW to amplify it)."""
    monkeypatch.setattr(hand_backward, "UNROLL_STEPS", 2)  # a short graph compiles quickly
    overrides = {"n_hidden": 16, "eval_interval": 5}  # 5 = two compiled chunks and one eager step
    chunks = Chunks()
    compiled = fit(names, 11, fast_path="compile", observers=[chunks], **overrides)
    assert_same_run(fit(names, 11, fast_path="eager", **overrides), compiled)
    # one on_step_end per chunk, for its last step, with every step's loss readable through the view
    assert chunks.spans == [(0, 2), (2, 4), (4, 5), (5, 6), (6, 8), (8, 10), (10, 11)]  # multiples of 2, evals
    assert torch.equal(torch.cat(chunks.losses), compiled[0])


class Chunks(Observer):
    """The steps each on_step_end covers, and their losses."""

    def __init__(self):
        self.spans, self.losses = [], []

    def on_step_end(self, view, step, loss):
        assert step == view.step - 1 and float(loss) == float(view.losses(step, step + 1)[0])
        self.spans.append((view.chunk_start, view.step))
        self.losses.append(view.losses(view.chunk_start, view.step).clone())


def test_unsupported_settings_are_refused(names):
    with pytest.raises(CharlabError, match="--fast-path compile"):
        fit(names, 2, fast_path="compile", optimizer="adamw")

    class Watcher(Observer):
        def on_after_backward(self, view, step):
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


def test_cached_logits_are_the_model_logits(names):
    model = small_trained_looking_model(names)
    context = torch.randint(0, model.vocab_size, (50, 5), generator=torch.Generator().manual_seed(3))
    for t in range(context.shape[1] + 1):
        with torch.no_grad():
            direct = model.eval().next_token_logits(context[:, :t])  # (50, V)
        torch.testing.assert_close(NextCharCache(model)(context[:, :t]), direct, atol=1e-5, rtol=0)


def test_cached_sampling_draws_the_direct_samples(names, monkeypatch):
    model = small_trained_looking_model(names)
    n = 5000  # more than one SAMPLE_CHUNK, so the cache is reused across chunks
    assert worth_caching(model, n) and not worth_caching(model, 10)

    def draw():
        return sample_ids(model, n, torch.Generator().manual_seed(7), temperature=0.9, top_k=20, prefix=[1])

    with_cache = draw()
    monkeypatch.setattr(sample_module, "worth_caching", lambda model, n: False)
    direct = draw()
    assert with_cache == direct
    assert len({tuple(row) for row in direct}) > n // 2  # real samples, not one repeated row
