"""The sequence models' fast path (``nn/fast.py``, ``nn/recurrent_fast.py``, ``nn/attention_fast.py``)
against the hand-written reference: the same logits and the same gradients of every parameter, in
float64, with dropout and recurrent dropout drawing the same masks from the same generator; the
reference is taken whenever a hook watches a layer the fast path skips; state dicts are untouched."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from charlab.config import load_preset
from charlab.models import build_model
from charlab.nn.dropout import Dropout
from charlab.nn.fast import ENV, default_path, set_sequence_path

VOCAB = 11
SMALL = {"n_embd": 8, "n_hidden": 12, "n_head": 2, "n_layers": 2, "vocab_size": VOCAB}
SEQUENCE_MODELS = ["rnn", "gru", "lstm", "bow", "transformer"]
RECURRENT = ["rnn", "gru", "lstm"]
EXACT = {"rtol": 1e-9, "atol": 1e-12}  # float64: the two paths differ by rounding only


def make(name: str, seed: int = 1, **overrides):
    cfg, _ = load_preset(name)
    cfg = dataclasses.replace(cfg, **{**SMALL, "members": 1, **overrides})
    return build_model(cfg, torch.Generator().manual_seed(seed)).double()


def generators(model) -> list[torch.Generator]:
    found = {id(m.generator): m.generator for m in model.modules()
             if isinstance(m, Dropout) and m.generator is not None}
    return list(found.values())


def run(model, path: str, idx, targets, states):
    """Logits and every parameter's gradient on ``path``, the dropout generators reset to ``states``."""
    for gen, state in zip(generators(model), states):
        gen.set_state(state)
    set_sequence_path(model, path)
    model.zero_grad(set_to_none=True)
    logits, loss = model(idx, targets)
    (loss + logits.square().mean()).backward()  # a gradient that reaches every logit
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def assert_paths_agree(model, idx, targets):
    states = [g.get_state() for g in generators(model)]
    fast_logits, fast_grads = run(model, "fast", idx, targets, states)
    ref_logits, ref_grads = run(model, "reference", idx, targets, states)
    torch.testing.assert_close(fast_logits, ref_logits, **EXACT)
    assert fast_grads.keys() == ref_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(fast_grads[name], ref_grads[name], **EXACT, msg=name)


def batch(t: int = 9, b: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(VOCAB, (b, t), generator=gen)  # (B, T)
    targets = torch.randint(VOCAB, (b, t), generator=gen)  # (B, T)
    targets[0, 4:] = -1  # padding is ignored by the loss on both paths
    return idx, targets


def test_default_path_is_fast_and_the_environment_selects_the_reference(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert default_path() == "fast"
    monkeypatch.setenv(ENV, "reference")
    assert default_path() == "reference"
    assert all(m.sequence_path == "reference" for m in make("gru").modules() if hasattr(m, "sequence_path"))


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_fast_equals_reference_without_dropout(name):
    model = make(name, dropout=0.0, recurrent_dropout=0.0)
    assert model.sequence_path == "fast"
    assert_paths_agree(model, *batch())


@pytest.mark.parametrize("name", RECURRENT)
def test_fast_equals_reference_with_dropout_and_recurrent_dropout(name):
    model = make(name, dropout=0.3, recurrent_dropout=0.35)
    assert_paths_agree(model, *batch())
    assert_paths_agree(model, *batch(t=1))  # a single position: the loop has one step


@pytest.mark.parametrize("name", RECURRENT)
def test_fast_equals_reference_with_recurrent_dropout_only(name):
    """No input dropout: the fast path looks the gates' input shares up per vocabulary entry."""
    assert_paths_agree(make(name, dropout=0.0, recurrent_dropout=0.5), *batch())


def test_transformer_with_dropout_draws_the_same_masks():
    model = make("transformer", dropout=0.2)
    assert_paths_agree(model, *batch())


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_eval_mode_and_sampling_agree(name):
    model = make(name, dropout=0.3, recurrent_dropout=0.35) if name in RECURRENT else make(name)
    model.eval()
    idx, _ = batch(t=6)
    with torch.no_grad():
        fast = set_sequence_path(model, "fast").next_token_logits(idx)
        ref = set_sequence_path(model, "reference").next_token_logits(idx)
    torch.testing.assert_close(fast, ref, **EXACT)


@pytest.mark.parametrize("name", RECURRENT)
def test_ensemble_members_switch_together(name):
    cfg, _ = load_preset(name)
    model = build_model(dataclasses.replace(cfg, **SMALL, members=2, dropout=0.3, recurrent_dropout=0.3),
                        torch.Generator().manual_seed(0)).double()
    set_sequence_path(model, "reference")
    assert all(m.sequence_path == "reference" for m in model.members)
    model.train()
    assert_paths_agree(model, *batch(b=6))


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_a_hook_on_a_skipped_layer_takes_the_reference_path(name):
    """Diagnostics observe the hand-written layers through hooks: those forwards run the reference."""
    model = make(name)
    layer = next(m for m in model.modules() if type(m).__name__ == "Tanh"
                 or type(m).__name__ == "LayerNorm")
    seen = []
    handle = layer.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    model(batch()[0])
    handle.remove()
    assert seen
    seen.clear()
    model(batch()[0])
    assert not seen


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_state_dict_keys_do_not_depend_on_the_path(name):
    model = make(name)
    keys = list(model.state_dict())
    set_sequence_path(model, "reference")
    assert list(model.state_dict()) == keys
    assert not any("fast" in k or "sequence_path" in k for k in keys)


@pytest.mark.parametrize("name", RECURRENT)
def test_float32_training_steps_stay_together(name):
    """A few AdamW steps in float32 on each path from the same weights: the losses agree to rounding."""
    losses = {}
    for path in ("fast", "reference"):
        model = set_sequence_path(make(name, dropout=0.2, recurrent_dropout=0.2).float(), path)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        seen = []
        for step in range(5):
            idx, targets = batch(seed=step)
            _, loss = model(idx, targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen.append(float(loss.detach()))
        losses[path] = seen
    assert losses["fast"] == pytest.approx(losses["reference"], rel=1e-4)


@pytest.mark.parametrize("name", ["bow", "transformer"])
@pytest.mark.parametrize("padding", ["trailing", "inside"])
def test_the_loss_alone_equals_the_reference(name, padding, monkeypatch):
    """The training step's backward: the loss alone, taken inside the trunk. The transformer keeps its rows
    with a target first (``trunk_loss.TargetRows``): padding after each item's end gets no gradient and
    its backward leaves it out (``kept``: ``live`` rounded up, the extra rows padding); an ignored position
    before a target (``inside``, which
    ``build_sequences`` never makes) is read by that target through the attention, so every row is kept.
    The loss and the gradients are the reference's either way."""
    from charlab.nn import trunk_loss
    seen = []

    class Spy(trunk_loss.TargetRows):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append((self.live, self.kept, self.order.shape[0]))

    monkeypatch.setattr("charlab.nn.transformer_fast.TargetRows", Spy)
    model = make(name, dropout=0.0)
    idx, targets = batch(t=9, b=5)
    targets[1, 2:] = -1
    targets[3, 6:] = -1
    if padding == "inside":
        targets[2, 3] = -1
    grads, losses = {}, {}
    for path in ("fast", "reference"):
        set_sequence_path(model, path)
        model.zero_grad(set_to_none=True)
        _, loss = model(idx, targets)
        (loss * 0.7).backward()
        grads[path], losses[path] = {n: p.grad.clone() for n, p in model.named_parameters()}, loss.detach()
    if name == "transformer":
        live, kept, rows = seen[0]
        assert live == int((targets != -1).sum()) < 32 and rows == targets.numel() == 45
        assert kept == (rows if padding == "inside" else 32)  # live rounded up to transformer_fast.ROW_QUANTUM
    torch.testing.assert_close(losses["fast"], losses["reference"], **EXACT)
    for n in grads["reference"]:
        torch.testing.assert_close(grads["fast"][n], grads["reference"][n], **EXACT, msg=n)


@pytest.mark.parametrize("name", ["bow", "transformer"])
def test_the_loss_without_any_target_is_nan_on_both_paths(name):
    model = make(name, dropout=0.0)
    idx, targets = batch(t=4, b=2)
    targets[:] = -1
    for path in ("fast", "reference"):
        _, loss = set_sequence_path(model, path)(idx, targets)
        assert torch.isnan(loss)


def test_onednn_linear_is_torch_linear(monkeypatch):
    """``onednn.linear`` (the trunks' forward Linears): oneDNN's kernel for float32 on the CPU, the same product
    to float32 rounding; exactly ``F.linear`` in float64 and with oneDNN disabled."""
    import torch.nn.functional as F
    from charlab.nn.onednn import linear, onednn_applies
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=gen) for shape in ((40, 24), (36, 24), (36,)))
    torch.testing.assert_close(linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-5)
    assert torch.equal(linear(x.double(), w.double(), b.double()), F.linear(x.double(), w.double(), b.double()))
    monkeypatch.setattr(torch._C, "_get_mkldnn_enabled", lambda: False)  # torch.backends.mkldnn.enabled = False
    assert not onednn_applies(x)
    assert torch.equal(linear(x, w, b), F.linear(x, w, b))


@pytest.mark.parametrize("name", ["bow", "transformer"])
def test_float32_fast_equals_reference_to_float32_rounding(name):
    """The paths in float32, as training runs them (the transformer's Linears on oneDNN where it applies):
    the logits, the loss and every gradient agree to float32 rounding."""
    model = make(name, dropout=0.0).float()
    idx, targets = batch(t=9, b=5)
    targets[1, 2:] = -1
    results = {}
    for path in ("fast", "reference"):
        set_sequence_path(model, path)
        model.zero_grad(set_to_none=True)
        logits, loss = model(idx, targets)
        loss.backward()
        results[path] = (logits.detach(), loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    fast, ref = results["fast"], results["reference"]
    torch.testing.assert_close(fast[0], ref[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast[1], ref[1], rtol=1e-4, atol=1e-5)
    for n in ref[2]:
        torch.testing.assert_close(fast[2][n], ref[2][n], rtol=1e-3, atol=1e-5, msg=n)
