"""Every registered model under the one contract (models/base.py), plus the layers they add.

Parametrised over ``MODELS`` itself, so a newly registered model is tested without editing this file:
shapes, loss at init, overfitting a tiny batch, sampling, the diagnostics recorder; then sequence
models' causality and state carry, the hand-written transformer/RNN layers against torch, and
makemore's split against makemore's own recipe.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from charlab import api
from charlab.config import ModelConfig, TrainConfig, load_preset, preset_names
from charlab.data import BOUNDARY_ID, Vocab, build_examples, read_items
from charlab.diagnostics.recorder import Recorder, leaf_layers
from charlab.diagnostics.sampling import EVERY_STEP
from charlab.models import build_model
from charlab.models.registry import load_all
from charlab.nn.recurrent import LSTMCell, RNNCell
from charlab.rundir import load_run, save_run
from charlab.inference.sample import sample_texts
from charlab.data.splits import MAKEMORE_SEED, make_splits, makemore_split
from charlab.training.loop import Trainer
from charlab.nn.attention import CausalSelfAttention
from charlab.nn.layers import LayerNorm

MODEL_NAMES = sorted(load_all())
TINY_ITEMS = ["emma", "olivia", "ava", "isabella", "sophia"]  # longest 8 + boundary fits block 16
SMALL = {"n_embd": 8, "n_hidden": 16, "n_head": 2}  # small enough for a fast test, big enough to learn
INIT_TOLERANCE = 0.1  # issue 5: loss at init within 0.1 of -ln(1/V)
OVERFIT_STEPS = 300
OVERFIT_LR = 0.03  # Adam moves a weight ~lr a step: the zero-init bigram needs logits ~5 in 300 steps
OVERFIT_MARGIN = 0.05  # every model sees at least the previous character, so it reaches the bigram optimum
N_SAMPLES = 8
COUNT_BIGRAM_LOSS = 2.45  # makemore part 1: the smoothed count bigram on names
COUNT_BIGRAM_TOLERANCE = 0.03  # a 1,000-name test set moves the mean by about this much


def preset_config(name: str, vocab_size: int, **overrides):
    """The model's own preset (one per registered model, same name), with overrides."""
    model_cfg, _ = load_preset(name)
    model_cfg = dataclasses.replace(model_cfg, vocab_size=vocab_size, **overrides)
    return model_cfg


def small_model(name: str, vocab: Vocab, seed: int = 0):
    cfg = preset_config(name, vocab.size, **SMALL, n_layers=min(load_preset(name)[0].n_layers, 2))
    return build_model(cfg, torch.Generator().manual_seed(seed)), cfg


@pytest.fixture(scope="module")
def tiny():
    vocab = Vocab.from_items(TINY_ITEMS)
    return vocab, {"train": TINY_ITEMS, "dev": TINY_ITEMS[:2], "test": TINY_ITEMS[2:]}


def bigram_entropy(items: list[str], vocab: Vocab) -> float:
    """The best mean NLL any model seeing the previous character can reach: H(next | prev), by counting."""
    counts: dict[tuple[int, int], int] = {}
    for item in items:
        ids = [BOUNDARY_ID, *vocab.encode(item), BOUNDARY_ID]
        for a, b in zip(ids, ids[1:]):
            counts[a, b] = counts.get((a, b), 0) + 1
    totals: dict[int, int] = {}
    for (a, _), n in counts.items():
        totals[a] = totals.get(a, 0) + n
    nll = -sum(n * math.log(n / totals[a]) for (a, _), n in counts.items())
    return nll / sum(counts.values())


def test_every_model_has_a_preset_and_the_issue_models_are_registered():
    expected = {"bigram-counts", "bigram", "mlp", "wavenet", "rnn", "gru", "lstm", "bow", "transformer"}
    assert expected <= set(MODEL_NAMES)
    for name in MODEL_NAMES:
        assert load_preset(name)[0].model == name


@pytest.mark.parametrize("preset", [pytest.param(p, marks=pytest.mark.slow) if p == "best" else p
                                    for p in preset_names()])  # best: three LSTMs of 512
def test_every_preset_trains(preset, write_words):
    """Each shipped preset, as `charlab train --preset NAME` resolves it, trains a few steps on a small
    word list and ends finite: its fields, model and batching fit together."""
    data = write_words("\n".join(TINY_ITEMS * 20))
    result = api.train(data=data, preset=preset, steps=3, warmup_steps=0, eval_interval=3, n_samples=1)
    assert all(math.isfinite(v) for v in result.losses.values()) and len(result.samples) == 1


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shapes(name, tiny):
    vocab, _ = tiny
    model, cfg = small_model(name, vocab)
    ex = build_examples(TINY_ITEMS, vocab, model.example_kind, cfg.block_size)
    logits, loss = model(ex.x, ex.y)
    window = model.example_kind == "window"
    expected = (len(ex), vocab.size) if window else (len(ex), cfg.block_size, vocab.size)
    assert tuple(logits.shape) == expected
    assert loss.dim() == 0 and torch.isfinite(loss)
    model.eval()
    for t in (0, 3):
        context = torch.ones(2, t, dtype=torch.long)  # (2, t)
        assert tuple(model.next_token_logits(context).shape) == (2, vocab.size)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_loss_at_init_is_uniform(name, names):
    """The presets' sizes with the default init (``ModelConfig().init``; the ``mlp`` preset's naive init
    is the lecture's deliberately bad start) on a batch of names: within 0.1 of -ln(1/27)."""
    vocab = Vocab.from_items(names)
    cfg = preset_config(name, vocab.size, init=ModelConfig().init)
    model = build_model(cfg, torch.Generator().manual_seed(0))
    ex = build_examples(names[:256], vocab, model.example_kind, cfg.block_size)
    with torch.no_grad():
        _, loss = model(ex.x, ex.y)
    assert abs(float(loss) - math.log(vocab.size)) < INIT_TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_overfits_a_tiny_batch(name, tiny):
    vocab, _ = tiny
    model, cfg = small_model(name, vocab)
    ex = build_examples(TINY_ITEMS, vocab, model.example_kind, cfg.block_size)
    optimum = bigram_entropy(TINY_ITEMS, vocab)
    if not model.trained_by_gradient:
        model.smoothing = 0.0  # unsmoothed counts are exactly the maximum-likelihood bigram
        model.fit_counts(ex)
        assert float(model(ex.x, ex.y)[1].detach()) == pytest.approx(optimum, abs=1e-5)
        return
    optimizer = torch.optim.AdamW(model.parameters(), lr=OVERFIT_LR, weight_decay=0.0)
    for _ in range(OVERFIT_STEPS):
        _, loss = model(ex.x, ex.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(model(ex.x, ex.y)[1].detach()) < optimum + OVERFIT_MARGIN < math.log(vocab.size)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_sampling_works_and_repeats_with_the_seed(name, tiny):
    vocab, splits = tiny
    model, cfg = small_model(name, vocab)
    first = sample_texts(model, vocab, splits, N_SAMPLES, seed=3)
    again = sample_texts(model, vocab, splits, N_SAMPLES, seed=3)
    assert first == again and len(first) == N_SAMPLES
    for sample in first:
        assert set(sample["text"]) <= set(vocab.chars)
        if model.example_kind == "sequence":
            assert len(sample["text"]) <= cfg.block_size - 1
    assert model.training  # sampling restores the mode


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_diagnostics_recorder_attaches(name, tiny):
    """Every leaf layer's output is recorded on a sampled step, every parameter's gradient, and no hook
    stays behind. The count bigram has no layers to hook (nothing is trained by gradient)."""
    vocab, _ = tiny
    model, cfg = small_model(name, vocab)
    ex = build_examples(TINY_ITEMS, vocab, model.example_kind, cfg.block_size)
    recorder = Recorder(schedule=EVERY_STEP, probe=True)
    train_cfg = TrainConfig(steps=2, batch_size=len(ex), optimizer="adamw", lr=1e-3, eval_interval=10)
    Trainer(model, ex, ex, train_cfg, [recorder]).fit()
    kinds = [r["kind"] for r in recorder.records]
    assert kinds[0] == "meta" and kinds[-1] == "probe"
    steps = recorder.steps()
    if not model.trained_by_gradient:
        assert steps == [] and leaf_layers(model) == []
        return
    assert [s["step"] for s in steps] == [0, 1]
    assert {layer["name"] for layer in steps[0]["layers"]} == {n for n, _ in leaf_layers(model)}
    assert {p["name"] for p in steps[0]["params"] if "grad" in p} == {n for n, _ in model.named_parameters()}
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_run_directory_rebuilds_the_model(name, tiny, tmp_path):
    """Saved weights and config rebuild a model that gives the same logits (no code executed)."""
    vocab, splits = tiny
    model, cfg = small_model(name, vocab)
    ex = build_examples(TINY_ITEMS, vocab, model.example_kind, cfg.block_size)
    if not model.trained_by_gradient:
        model.fit_counts(ex)
    save_run(tmp_path, cfg, TrainConfig(), vocab, splits, model)
    loaded = load_run(tmp_path).model
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ex.x)[0], model(ex.x)[0])


SEQUENCE_MODELS = [n for n in MODEL_NAMES if n in {"rnn", "gru", "lstm", "bow", "transformer"}]


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_state_carries_and_nothing_leaks_from_the_future(name, tiny):
    """Changing the first character changes the logits at the last position (the state advanced);
    changing the last character changes no earlier position (causal)."""
    vocab, _ = tiny
    model, cfg = small_model(name, vocab)
    model.eval()
    t = cfg.block_size
    base = torch.randint(1, vocab.size, (1, t), generator=torch.Generator().manual_seed(0))  # (1, T)
    first, last = base.clone(), base.clone()
    first[0, 1] = base[0, 1] % (vocab.size - 1) + 1
    last[0, -1] = base[0, -1] % (vocab.size - 1) + 1
    with torch.no_grad():
        ref, changed_first, changed_last = model(base)[0], model(first)[0], model(last)[0]  # (1, T, V)
    assert not torch.allclose(ref[0, -1], changed_first[0, -1])
    torch.testing.assert_close(ref[0, :-1], changed_last[0, :-1])


def test_layernorm_matches_torch():
    x = torch.randn(4, 5, 8, dtype=torch.float64)
    ours, theirs = LayerNorm(8).double(), torch.nn.LayerNorm(8).double()
    with torch.no_grad():
        theirs.weight.normal_()
        theirs.bias.normal_()
    ours.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(ours(x), theirs(x))


def test_causal_attention_matches_scaled_dot_product_attention():
    batch, t, channels, heads = 3, 6, 8, 2
    attn = CausalSelfAttention(channels, heads, block_size=t).double()
    x = torch.randn(batch, t, channels, dtype=torch.float64)
    q, k, v = attn.c_attn(x).split(channels, dim=2)
    split = [z.view(batch, t, heads, channels // heads).transpose(1, 2) for z in (q, k, v)]
    y = F.scaled_dot_product_attention(*split, is_causal=True).transpose(1, 2).reshape(batch, t, channels)
    torch.testing.assert_close(attn(x), attn.c_proj(y))


def test_rnn_and_lstm_cells_match_torch():
    n_in, hidden, batch = 3, 4, 5
    x = torch.randn(batch, n_in, dtype=torch.float64)
    h, c = torch.randn(batch, hidden, dtype=torch.float64), torch.randn(batch, hidden, dtype=torch.float64)
    for ours, theirs in ((RNNCell(n_in, hidden), torch.nn.RNNCell(n_in, hidden)),
                         (LSTMCell(n_in, hidden), torch.nn.LSTMCell(n_in, hidden))):
        ours, theirs = ours.double(), theirs.double()
        linear = next(m for m in ours.modules() if hasattr(m, "in_features"))
        with torch.no_grad():
            linear.weight.copy_(torch.cat([theirs.weight_ih, theirs.weight_hh], dim=1))
            linear.bias.copy_(theirs.bias_ih + theirs.bias_hh)
        if isinstance(ours, LSTMCell):
            torch.testing.assert_close(ours(x, (h, c)), theirs(x, (h, c)))
        else:
            torch.testing.assert_close(ours(x, (h,))[0], theirs(x, h))


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_cutting_the_padding_changes_no_loss(name, names):
    """Training batches are cut after their longest item (``Examples.rows``): the loss must be the
    loss of the full-width batch, to float rounding."""
    vocab = Vocab.from_items(names)
    model, cfg = small_model(name, vocab)
    ex = build_examples(names[:64], vocab, "sequence", cfg.block_size)
    x, y = ex.rows(slice(None))
    assert x.shape[1] < ex.x.shape[1]
    with torch.no_grad():
        torch.testing.assert_close(model(x, y)[1], model(ex.x, ex.y)[1])


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_recurrent_dropout_is_one_mask_per_sequence_on_the_gate_input_only(name, tiny):
    """The cell sees the same (B, H) mask at every step, it drops about p of the channels, and the
    model is deterministic in eval mode; the carried LSTM/GRU memory is not masked (checked against
    the cell run by hand)."""
    vocab, _ = tiny
    p = 0.5
    cfg = preset_config(name, vocab.size, **SMALL, recurrent_dropout=p)
    model = build_model(cfg, torch.Generator().manual_seed(1))
    masks = []
    model.cell.register_forward_hook(lambda mod, args, out: masks.append(args[2] if len(args) > 2 else "none"))
    idx = torch.randint(vocab.size, (64, cfg.block_size), generator=torch.Generator().manual_seed(0))
    model(idx)
    assert len(masks) == cfg.block_size and all(m is masks[0] for m in masks)
    assert abs(float((masks[0] == 0).float().mean()) - p) < 0.05
    x, state = torch.randn(4, SMALL["n_embd"]), model.cell.initial_state(4)
    state = tuple(s + torch.randn(4, SMALL["n_hidden"]) for s in state)
    zeros = torch.zeros(4, SMALL["n_hidden"])
    dropped = model.cell(x, state, zeros)  # every channel of h_{t-1} dropped from the gates
    if name == "gru":  # h_{t-1} is gone from the gates but still carried by (1 - z) * h_{t-1}
        xz = torch.cat([x, zeros], dim=1)  # (4, E+H)
        z = torch.sigmoid(model.cell.xh_to_z(xz))
        expected = (1 - z) * state[0] + z * torch.tanh(model.cell.xh_to_hbar(xz))
    else:  # the RNN's and the LSTM's h_{t-1} only feeds the gates; the LSTM's c is carried unmasked
        expected = model.cell(x, (zeros, *state[1:]))[0]
    torch.testing.assert_close(dropped[0], expected)
    model.eval()
    masks.clear()
    torch.testing.assert_close(model(idx)[0], model(idx)[0])
    assert masks and all(m is None for m in masks)


@pytest.mark.parametrize("name", ["transformer", "rnn", "gru", "lstm"])
def test_dropout_repeats_with_the_seed_and_is_off_in_eval(name, tiny):
    vocab, _ = tiny
    cfg = preset_config(name, vocab.size, **SMALL, n_layers=1, dropout=0.5)
    a, b = (build_model(cfg, torch.Generator().manual_seed(1)) for _ in range(2))
    idx = torch.randint(vocab.size, (2, cfg.block_size), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a(idx)[0], b(idx)[0])
    assert not torch.allclose(a(idx)[0], a(idx)[0])  # a fresh mask each call
    a.eval()
    torch.testing.assert_close(a(idx)[0], a(idx)[0])


def test_makemore_split_is_makemores_own(names):
    """makemore: torch.manual_seed(3407); randperm; the last min(1000, 10%) items are its test set."""
    with torch.random.fork_rng():
        torch.manual_seed(MAKEMORE_SEED)
        order = torch.randperm(len(names)).tolist()
    n_test = min(1000, int(len(names) * 0.1))
    splits = makemore_split(names)
    assert splits["test"] == [names[i] for i in order[-n_test:]]
    assert len(splits["dev"]) == n_test
    assert splits["train"] + splits["dev"] == [names[i] for i in order[:-n_test]]
    assert make_splits(names, "makemore", seed=1) == splits  # fixed: --seed does not move it


@pytest.mark.slow
def test_cli_trains_on_makemores_split_and_eval_reports_it(run_cli, tmp_path):
    """The count bigram (no steps) end to end: train on makemore's split, eval the run directory."""
    out = tmp_path / "run"
    trained = run_cli("train", "--preset", "bigram-counts", "--split", "makemore", "--out", out, "--json")
    assert trained.returncode == 0, trained.stderr
    losses = json.loads(trained.stdout)["losses"]
    evaluated = run_cli("eval", out, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == pytest.approx(losses)
    splits = json.loads((out / "splits.json").read_text(encoding="utf-8"))
    assert splits["test"] == makemore_split(read_items(None))["test"]
    assert abs(losses["test"] - COUNT_BIGRAM_LOSS) < COUNT_BIGRAM_TOLERANCE


@pytest.mark.slow
def test_wavenet_rejects_a_block_size_it_cannot_pair(run_cli, tmp_path):
    result = run_cli("train", "--preset", "wavenet", "--block-size", "6", "--steps", "1", "--out", tmp_path / "r")
    assert result.returncode == 2
    assert "power of two" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["mlp", "lstm"])
def test_ensemble_averages_its_members_probabilities(name, tiny, tmp_path):
    """``--members 2``: logits are log of the mean of the members' softmaxes (direct formula) and the
    loss is their cross-entropy, below the members' mean (Jensen); members start differently, and the ensemble
    samples and round-trips through a run directory like any model."""
    vocab, splits = tiny
    cfg = preset_config(name, vocab.size, **SMALL, n_layers=1, members=2)
    model = build_model(cfg, torch.Generator().manual_seed(0))
    ex = build_examples(TINY_ITEMS, vocab, model.example_kind, cfg.block_size)
    model.eval()
    with torch.no_grad():
        logits, loss = model(ex.x, ex.y)
        member_out = [m(ex.x, ex.y) for m in model.members]
    probs = torch.stack([F.softmax(lg, dim=-1) for lg, _ in member_out]).mean(0)  # (..., V)
    torch.testing.assert_close(logits.exp(), probs)
    assert not torch.allclose(member_out[0][0], member_out[1][0])
    ensemble_nll = F.cross_entropy(logits.reshape(-1, vocab.size), ex.y.reshape(-1), ignore_index=-1)
    torch.testing.assert_close(loss, ensemble_nll)  # the contract: the loss of the returned logits
    assert ensemble_nll <= (member_out[0][1] + member_out[1][1]) / 2 + 1e-6  # log of a mean >= mean of logs
    assert len(sample_texts(model, vocab, splits, N_SAMPLES, seed=3)) == N_SAMPLES
    save_run(tmp_path, cfg, TrainConfig(), vocab, splits, model)
    with torch.no_grad():
        torch.testing.assert_close(load_run(tmp_path).model(ex.x)[0], logits)


def test_ensemble_members_train_on_their_own_slices_of_the_batch(tiny):
    """In training, member k sees the k-th half of the batch only: the loss is the mean of each
    member's loss on its own half, and a member's gradient comes from its half alone."""
    vocab, _ = tiny
    cfg = preset_config("lstm", vocab.size, **SMALL, members=2, dropout=0.0)
    model = build_model(cfg, torch.Generator().manual_seed(0))
    ex = build_examples(TINY_ITEMS[:4], vocab, "sequence", cfg.block_size)
    logits, loss = model(ex.x, ex.y)
    halves = [model.members[i](ex.x[2 * i:2 * i + 2], ex.y[2 * i:2 * i + 2]) for i in range(2)]
    torch.testing.assert_close(loss, (halves[0][1] + halves[1][1]) / 2)
    torch.testing.assert_close(logits, torch.cat([halves[0][0], halves[1][0]]))
    first = model.members[0].lm_head.weight
    (grad,) = torch.autograd.grad(loss, first)
    (own,) = torch.autograd.grad(halves[0][1] / 2, first)
    torch.testing.assert_close(grad, own)
