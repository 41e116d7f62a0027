"""Diagnostics of sequence models (issue 15): the quantities against direct formulas, the verdicts on
constructed failures and on healthy presets, the figures, TensorBoard and the CLI."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import types

import pytest
import torch
from torch.func import vjp

from charlab.api import data_block_size, prepare_data, resolve_config, split_examples
from charlab.config import TrainConfig
from charlab.data import IGNORE_INDEX, Vocab, build_examples
from charlab.diagnostics import plots, sequence_records as sr
from charlab.diagnostics import quantities_sequence as qs
from charlab.diagnostics.health import check
from charlab.diagnostics.health_sequence import SEQUENCE_RULES
from charlab.diagnostics.recorder import Recorder
from charlab.diagnostics.sampling import EVERY_STEP, SampleSchedule
from charlab.models import build_model
from charlab.nn.fast import hooked, set_sequence_path
from charlab.nn.tap import Tap
from charlab.training.loop import Trainer
from charlab.training.lr_schedule import Schedule

ITEMS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "charlotte", "amelia"]
SCHEDULE = SampleSchedule(every=10, dense=3)
STEPS = 25  # a few sampled steps for the LATEST window; the constructed failures show from step 0
NEW_RULES = {"gradient through time", "forget gate closed", "cell saturation", "attention collapsed at init",
             "attention uniform", "residual stream growth"}
VERDICT_KEYS = {"rule", "status", "layer", "value", "threshold", "cause", "fix"}


def small(name: str, vocab: Vocab):
    """A small float64 model on the reference path (the oracles below compute in float64 too)."""
    model_cfg, _ = resolve_config(name, n_embd=16, n_hidden=24, n_head=2, n_layers=2)
    model_cfg.vocab_size, model_cfg.block_size = vocab.size, max(len(w) for w in ITEMS) + 1
    return set_sequence_path(build_model(model_cfg, torch.Generator().manual_seed(0)).double(), "reference")


def recorded_step(model, vocab):
    """One recorded step on ``ITEMS`` (the recorder's events around a forward and backward pass, as the
    training loop emits them; no optimizer step, so the weights are those the oracles see); returns
    (the step record, x, y)."""
    ex = build_examples(ITEMS, vocab, "sequence", model.block_size)
    x, y = ex.rows(slice(None))
    cfg = TrainConfig(steps=1, batch_size=len(ITEMS), lr=0.0, schedule="constant")
    view = types.SimpleNamespace(model=model, cfg=cfg, lr=Schedule(cfg).lr, train_examples=ex)
    rec = Recorder(schedule=EVERY_STEP)
    rec.on_train_start(view)
    rec.on_step_start(view, 0)
    _, loss = model(x, y)
    loss.backward()
    rec.on_after_backward(view, 0)
    rec.on_step_end(view, 0, loss.detach())
    assert not hooked(model)
    return rec.steps()[0], x, y


@pytest.fixture(scope="module")
def vocab():
    return Vocab.from_items(ITEMS)


def oracle_state_gradients(model, x, y):
    """||dL/ds_t|| and what step t sends back to s_{t-1}, by the backward recursion written out: the
    loss's gradient at each hidden output (autograd on the stacked outputs), then one vector-Jacobian
    product of the cell's step function per position, last to first (torch.func.vjp)."""
    cell, emb = model.cell, model.wte(x)  # (B, T, E)
    states = [cell.initial_state(x.shape[0])]
    for t in range(x.shape[1]):
        states.append(cell(emb[:, t], states[-1]))
    hidden = torch.stack([s[0] for s in states[1:]], 1).detach().requires_grad_()  # (B, T, H)
    logits = model.lm_head(hidden)  # (B, T, V)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                             ignore_index=IGNORE_INDEX)
    (direct,) = torch.autograd.grad(loss, hidden)  # (B, T, H)
    received, sent = [], []
    carried = tuple(torch.zeros_like(s) for s in states[-1])  # nothing comes back from beyond the last position
    for t in range(x.shape[1] - 1, -1, -1):
        grad_t = (direct[:, t] + carried[0], *carried[1:])  # dL/ds_t: h gets the output layer's share too
        _, pullback = vjp(lambda *s: cell(emb[:, t].detach(), s), *(s.detach() for s in states[t]))
        carried = pullback(grad_t)
        received.append(math.sqrt(sum(float(g.detach().norm()) ** 2 for g in grad_t)))
        sent.append(math.sqrt(sum(float(g.detach().norm()) ** 2 for g in carried)))
    return received[::-1], sent[::-1]


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_state_gradients_equal_the_backward_recursion_written_out(name, vocab):
    model = small(name, vocab)
    record, x, y = recorded_step(model, vocab)
    received, sent = sr.state_gradients(record)["cell"]
    want_received, want_sent = oracle_state_gradients(model, x, y)
    assert received == pytest.approx(want_received, rel=1e-4)
    assert sent == pytest.approx(want_sent, rel=1e-4)
    assert sr.through_time(record)["cell"] == pytest.approx(math.prod(s / r for s, r in zip(want_sent[1:],
                                                                                                 want_received[1:])),
                                                            rel=1e-3)


def test_hidden_gradient_norms_equal_autograd_on_retained_states(vocab):
    """The issue's ||dL/dh_t||: for the GRU (state = h) the recorded norms are autograd's on the h_t kept
    from an explicit loop over the positions."""
    model = small("gru", vocab)
    record, x, y = recorded_step(model, vocab)
    emb, state, hs = model.wte(x), model.cell.initial_state(x.shape[0]), []
    for t in range(x.shape[1]):
        state = model.cell(emb[:, t], state)
        hs.append(state[0])
    logits = model.lm_head(torch.stack(hs, 1))  # (B, T, V)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab.size), y.reshape(-1), ignore_index=IGNORE_INDEX)
    want = [float(g.norm()) for g in torch.autograd.grad(loss, hs)]
    hidden = next(e for e in record["taps"] if e["name"] == "cell.hidden")
    assert hidden["grad_norm"] == pytest.approx(want, rel=1e-4)


def test_gates_entry_equals_the_sigmoid_of_the_gate_preactivations(vocab):
    model = small("lstm", vocab)
    hidden = model.cell.n_hidden
    with torch.no_grad():
        model.cell.xh_to_gates.bias[hidden:2 * hidden] = -5.0  # the forget gate's bias
    record, x, _ = recorded_step(model, vocab)
    cell, emb, state, forget = model.cell, model.wte(x), model.cell.initial_state(x.shape[0]), []
    with torch.no_grad():
        for t in range(x.shape[1]):
            gates = cell.xh_to_gates(torch.cat([emb[:, t], state[0]], 1))  # (B, 4H)
            forget.append(torch.sigmoid(gates[:, hidden:2 * hidden]))
            state = cell(emb[:, t], state)
    f = torch.cat(forget)  # (T*B, H)
    entry = sr.gates(record)["cell.forget_gate"]
    assert entry["mean"] == pytest.approx(float(f.mean()), rel=1e-5)
    assert entry["low"] == pytest.approx(float((f < 0.03).double().mean()))
    assert entry["high"] == 0.0


def test_attention_quantities_equal_direct_formulas(vocab):
    model = small("transformer", vocab)
    record, x, _ = recorded_step(model, vocab)
    attn, (batch, t) = model.blocks[0].attn, x.shape
    with torch.no_grad():
        h = model.blocks[0].ln_1(model.wte(x) + model.wpe(torch.arange(t)))  # (B, T, C)
        q, k, _ = attn.c_attn(h).split(h.shape[-1], dim=2)
        q, k = (z.view(batch, t, attn.n_head, -1).transpose(1, 2) for z in (q, k))  # (B, nh, T, hs)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, nh, T, T)
        p = scores.masked_fill(~torch.tril(torch.ones(t, t, dtype=torch.bool)), float("-inf")).softmax(-1)
        entropy = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1).mean((0, 2))  # (nh,)
        visible = torch.stack([scores[:, hd][:, torch.tril(torch.ones(t, t, dtype=torch.bool))].flatten()
                               for hd in range(attn.n_head)])  # (nh, B*T(T+1)/2)
    entry = sr.attention(record)["blocks.0.attn"]
    assert entry["entropy"] == pytest.approx(entropy.tolist(), rel=1e-5)
    assert entry["uniform"] == pytest.approx(sum(math.log(i + 1) for i in range(t)) / t)
    assert entry["logit_std"] == pytest.approx(visible.std(1).tolist(), rel=1e-5)
    assert len(entry["head_grad"]) == attn.n_head and all(g > 0 for g in entry["head_grad"])
    assert [name for name, _ in sr.residual(record)] == ["blocks.0.resid", "blocks.1.resid"]


def test_pure_functions_on_constructed_values():
    g = torch.tensor([0.01, 0.02, 0.5, 0.98, 0.97, 0.03])
    summary = qs.gate_summary(g)
    assert (float(summary["low"]), float(summary["high"])) == (pytest.approx(2 / 6), pytest.approx(1 / 6))
    uniform = torch.tril(torch.ones(3, 3)) / torch.arange(1, 4).unsqueeze(1)  # (T, T) row t: 1/(t+1)
    assert qs.attention_entropy(uniform.expand(2, 1, 3, 3)).item() == pytest.approx(qs.uniform_entropy(3))
    assert qs.attention_entropy(torch.eye(3).expand(2, 1, 3, 3)).item() == 0.0
    assert qs.through_time([1.0, 2.0, 4.0], [9.0, 1.0, 1.0]) == pytest.approx(0.5 * 0.25)
    assert qs.through_time([1.0], [1.0]) is None
    assert qs.joint_norms([[3.0, 0.0], [4.0, 1.0]]) == [5.0, 1.0]


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm", "bow", "transformer"])
def test_taps_add_no_parameter_and_leave_the_fast_path_unhooked(name, vocab):
    model = small(name, vocab)
    taps = [n for n, m in model.named_modules() if isinstance(m, Tap)]
    assert taps and not any(n.startswith(tuple(taps)) for n in model.state_dict())
    assert all(not list(m.parameters()) and not list(m.buffers()) for m in model.modules() if isinstance(m, Tap))
    assert not hooked(model)


@functools.cache
def names():
    return prepare_data(None, 42)


def names_model(preset: str):
    """A preset's model for the embedded names, as ``charlab.train`` builds it (seed 42)."""
    vocab, splits = names()
    model_cfg, _ = resolve_config(preset)
    model_cfg.vocab_size, model_cfg.block_size = vocab.size, data_block_size(splits)
    return build_model(model_cfg, torch.Generator().manual_seed(42))


def train_recorded(preset: str, model, steps: int = STEPS, schedule: SampleSchedule = SCHEDULE, sinks=()) -> list:
    """The records of a short training of ``model`` (maybe modified by hand) with ``preset``'s settings."""
    _, cfg = resolve_config(preset, steps=steps, eval_interval=10 * steps)
    vocab, splits = names()
    examples = split_examples(splits, vocab, model, "cpu")
    rec = Recorder(schedule=schedule, sinks=sinks)
    Trainer(model, examples["train"], examples["dev"], cfg, [rec]).fit()
    return rec.records


def verdicts(records: list, rule: str) -> list:
    return [v for v in check(records) if v.rule == rule]


def recurrent_gain(model, gain: float) -> None:
    """Redraw the RNN's recurrent weights (the columns of its Linear that read h_{t-1}) at ``gain``."""
    weight = model.cell.xh_to_h.weight  # (H, E+H)
    hidden = weight.shape[0]
    with torch.no_grad():
        weight[:, -hidden:] = torch.randn(hidden, hidden, generator=torch.Generator().manual_seed(1)) * gain / \
            math.sqrt(hidden)


@pytest.mark.parametrize("gain, cause", [(3.0, "exploding"), (0.3, "vanishing")])
def test_tanh_rnn_recurrent_gain_is_flagged(gain, cause):
    model = names_model("rnn")
    recurrent_gain(model, gain)
    (verdict,) = verdicts(train_recorded("rnn", model), "gradient through time")
    assert verdict.status != "pass" and verdict.cause.startswith(cause) and verdict.layer == "cell"


def test_lstm_with_forget_bias_minus_5_is_flagged():
    model = names_model("lstm")
    hidden = model.cell.n_hidden
    with torch.no_grad():
        model.cell.xh_to_gates.bias[hidden:2 * hidden] = -5.0  # i, f, g, o: the second quarter is the forget gate
    records = train_recorded("lstm", model)
    (forget,) = verdicts(records, "forget gate closed")
    assert forget.status == "fail" and forget.layer == "cell.forget_gate" and "+1" in forget.fix
    (through,) = verdicts(records, "gradient through time")
    assert through.status != "pass" and through.cause.startswith("vanishing")


LARGE_INIT = 2.0  # query and key weights twice their init: with the missing 1/sqrt(d), logits ~16x


def test_transformer_without_the_scale_and_with_large_init_collapses_attention():
    model = names_model("transformer")
    width = model.wte.weight.shape[1]
    head = width // model.blocks[0].attn.n_head
    with torch.no_grad():
        for block in model.blocks:
            weight = block.attn.c_attn.weight  # (3C, C): query, key, value rows
            weight[:width] *= math.sqrt(head) * LARGE_INIT  # q . k / sqrt(d) with q x sqrt(d): the scale undone
            weight[width:2 * width] *= LARGE_INIT
    found = verdicts(train_recorded("transformer", model), "attention collapsed at init")
    assert len(found) == len(model.blocks) and all(v.status == "fail" for v in found)
    assert "1/sqrt(head size)" in found[0].fix


def test_attention_that_cannot_learn_stays_uniform_and_is_flagged():
    """Zero query and key weights: every score is 0 and so is their gradient, so attention stays an average."""
    model = names_model("transformer")
    width = model.wte.weight.shape[1]
    with torch.no_grad():
        for block in model.blocks:
            block.attn.c_attn.weight[:2 * width] = 0.0
            block.attn.c_attn.bias[:2 * width] = 0.0
    records = train_recorded("transformer", model, steps=120, schedule=SampleSchedule(every=50, dense=1))
    found = verdicts(records, "attention uniform")
    assert len(found) == len(model.blocks) and all(v.status == "fail" for v in found)
    assert found[0].value == pytest.approx(1.0)


HEALTHY = SampleSchedule(every=50, dense=1)  # the latest sampled steps from the second half of training


@pytest.mark.slow
@pytest.mark.parametrize("preset, steps", [("gru", 400), ("lstm", 400), ("transformer", 300)])
def test_healthy_presets_pass_every_new_rule(preset, steps):
    records = train_recorded(preset, names_model(preset), steps=steps, schedule=HEALTHY)
    found = [v for v in check(records) if v.rule in NEW_RULES]
    expected = {"gru": {"gradient through time", "cell saturation"},
                "lstm": {"gradient through time", "forget gate closed", "cell saturation"},
                "transformer": {"attention collapsed at init", "attention uniform", "residual stream growth"}}
    assert {v.rule for v in found} == expected[preset]
    assert [v.to_dict() for v in found if v.status != "pass"] == []


def test_window_models_get_no_new_rule_and_no_taps():
    model = names_model("mlp-bn")
    vocab, splits = names()
    _, cfg = resolve_config("mlp-bn", steps=3, eval_interval=100)
    examples = split_examples(splits, vocab, model, "cpu")
    rec = Recorder(schedule=EVERY_STEP)
    Trainer(model, examples["train"], examples["dev"], cfg, [rec]).fit()
    assert rec.records[0]["taps"] == [] and all("taps" not in s for s in rec.steps())
    assert not {v.rule for v in check(rec.records)} & NEW_RULES
    assert len(SEQUENCE_RULES) == len(NEW_RULES)


@functools.cache
def short_run(preset: str) -> list:
    return train_recorded(preset, names_model(preset))


@pytest.mark.parametrize("preset, figures", [
    ("lstm", {"gradient_through_time", "gate_saturation"}),
    pytest.param("transformer", {"attention_entropy", "residual_std"}, marks=pytest.mark.slow),  # 60 layers' figures
    ("mlp-bn", set())])
def test_figures_are_drawn_for_the_models_that_have_them(preset, figures, tmp_path):
    window = preset == "mlp-bn"
    records = train_recorded(preset, names_model(preset), steps=3, schedule=EVERY_STEP) if window else short_run(preset)
    paths = plots.draw_all(records, [], tmp_path)
    drawn = {p.stem for p in paths} & set(plots.SEQUENCE_FIGURES)
    assert drawn == figures
    assert all((tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG") for name in figures)


def test_the_transformer_figures_draw_every_layer_and_head():
    records = short_run("transformer")
    heat_map = plots.SEQUENCE_FIGURES["attention_entropy"](records)
    layers, heads = len(sr.attention(records[-1])), len(sr.attention(records[-1])["blocks.0.attn"]["entropy"])
    assert heat_map.axes[0].images[0].get_array().shape == (layers, heads)
    (line,) = plots.SEQUENCE_FIGURES["residual_std"]([records[0], records[-1]]).axes[0].lines
    assert list(line.get_ydata()) == [std for _, std in sr.residual(records[-1])]


def test_tensorboard_shows_the_recorded_sequence_numbers(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from charlab.diagnostics.tensorboard import TensorBoardSink
    records = train_recorded("lstm", names_model("lstm"), sinks=[TensorBoardSink(tmp_path)])
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    steps = [r for r in records if r["kind"] == "step"]
    points = {p.step: p.value for p in events.Scalars("through_time/cell")}
    assert points == pytest.approx({r["step"]: sr.through_time(r)["cell"] for r in steps}, rel=1e-5)
    forget = {p.step: p.value for p in events.Scalars("gate_mean/cell.forget_gate")}
    assert forget[steps[-1]["step"]] == pytest.approx(sr.gates(steps[-1])["cell.forget_gate"]["mean"], rel=1e-5)
    assert "figures/gradient_through_time" in events.Tags()["images"]


def test_the_init_rule_reads_the_initialisation_wherever_it_is_recorded():
    """From a run recorded from its initialisation, or from the ``init_step`` record that ``charlab diagnose``
    carries over from training; a probe from trained weights alone has no initialisation to judge."""
    records = short_run("transformer")
    meta, steps = records[0], [r for r in records if r["kind"] == "step"]
    blocks = len(sr.attention(steps[0]))
    assert len(verdicts(records, "attention collapsed at init")) == blocks
    probe = [{**meta, "from_init": False}, *steps]
    assert verdicts(probe, "attention collapsed at init") == []
    carried = verdicts([*probe, {**steps[0], "kind": "init_step"}], "attention collapsed at init")
    assert [v.to_dict() for v in carried] == [v.to_dict() for v in verdicts(records, "attention collapsed at init")]


def run_cli(*args):
    from charlab.cli.main import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_train_diagnose_then_diagnose_json_lists_the_new_rules(tmp_path):
    run = tmp_path / "lstm"
    code, _, err = run_cli("train", "--preset", "lstm", "--steps", "30", "--eval-interval", "1000", "--samples", "0",
                           "--out", run, "--diagnose", "--json")
    assert code == 0, err
    recorded = [json.loads(line) for line in (run / "diagnostics.jsonl").read_text().splitlines()]
    assert any("taps" in r for r in recorded if r["kind"] == "step")
    code, out, err = run_cli("diagnose", run, "--steps", "5", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert all(set(v) == VERDICT_KEYS for v in found)
    assert {"gradient through time", "forget gate closed", "cell saturation"} <= {v["rule"] for v in found}
    assert (run / "figures" / "gradient_through_time.png").is_file()
    kinds = [json.loads(line)["kind"] for line in (run / "diagnose.jsonl").read_text().splitlines()]
    assert kinds.count("init_step") == 1  # training's step 0, for the verdicts on the initialisation


@pytest.mark.slow
def test_memory_experiment_compares_the_three_cells(tmp_path):
    from charlab.experiments import EXPERIMENTS
    from charlab.experiments.runner import write_outputs
    result = EXPERIMENTS["memory"].run(steps=40, seed=42)
    assert [row["cell"] for row in result.rows] == ["rnn", "gru", "lstm"]
    assert all(next(iter(row)) == "cell" for row in result.rows)
    assert all(r["through_time_end"] > 0 and r["dev"] > 0 for r in result.rows)
    assert any("keeps the gradient alive through time best" in line for line in result.findings)
    written = write_outputs(result, tmp_path)
    assert (tmp_path / "memory-gradient.png").is_file() and (tmp_path / "memory.json") in written
