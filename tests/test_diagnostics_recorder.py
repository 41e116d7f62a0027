"""The recorder: hooks only on sampled steps and removed afterwards, values equal a direct recomputation
of the same step, records in memory equal the JSON lines on disk."""

from __future__ import annotations

import types

import pytest
import torch

import charlab
from charlab.config import TrainConfig
from charlab.data import Examples
from charlab.diagnostics import quantities as q
from charlab.diagnostics.recorder import Recorder, leaf_layers, read_records
from charlab.rundir import DIAGNOSTICS
from charlab.diagnostics.sampling import SampleSchedule
from charlab.diagnostics.sinks import Sink
from charlab.nn.layers import Linear, Sequential, Tanh
from charlab.models.base import WindowModel
from charlab.training.lr_schedule import Schedule


class TinyNet(WindowModel):
    """Two tanh layers on a 4-dim input (no embedding), enough to check every recorded number."""

    def __init__(self, vocab_size: int = 5):
        super().__init__(vocab_size, block_size=1)
        self.layers = Sequential(Linear(4, 6), Tanh(), Linear(6, 6), Tanh(), Linear(6, vocab_size))

    def logits(self, x):
        return self.layers(x)  # (B, 4) -> (B, V)


def fake_view(model, steps=3):
    cfg = TrainConfig(steps=steps, batch_size=8, lr=0.5, schedule="constant")
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))  # (N, 4)
    examples = Examples(x, torch.arange(16) % 5, torch.arange(16))
    return types.SimpleNamespace(model=model, cfg=cfg, lr=Schedule(cfg).lr, train_examples=examples)  # a TrainView's


def drive(rec, view, step, x, y, opt):
    """One training step with the recorder's events, as steps.AutogradStep emits them."""
    rec.on_step_start(view, step)
    _, loss = view.model(x, y)
    opt.zero_grad()
    loss.backward()
    rec.on_after_backward(view, step)
    opt.step()
    rec.on_step_end(view, step, loss.detach())
    return loss


def all_hooks_gone(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())


def test_values_equal_direct_recomputation_and_hooks_are_removed(tmp_path):
    torch.manual_seed(0)
    model = TinyNet()
    view = fake_view(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    rec = Recorder(schedule=SampleSchedule(every=2, dense=1), out=tmp_path, probe=False)
    rec.on_train_start(view)
    x, y = view.train_examples.x[:8], view.train_examples.y[:8]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # the direct computation of step 0, on a copy of the model with retain_grad (the oracle only)
    twin = TinyNet()
    twin.load_state_dict(model.state_dict())
    acts, h = [], x
    for layer in twin.layers:
        h = layer(h)
        h.retain_grad()
        acts.append(h)
    torch.nn.functional.cross_entropy(h, y).backward()

    drive(rec, view, 0, x, y, opt)
    assert all_hooks_gone(model)
    step0 = rec.steps()[0]
    assert [e["name"] for e in step0["layers"]] == [f"layers.{i}" for i in range(5)]
    for entry, act in zip(step0["layers"], acts):
        assert entry["out"]["mean"] == pytest.approx(act.mean().item(), abs=1e-6)
        assert entry["out"]["std"] == pytest.approx(act.std().item(), rel=1e-5)
        assert entry["grad"]["std"] == pytest.approx(act.grad.std().item(), rel=1e-5)
    assert step0["layers"][1]["out"]["saturation"] == pytest.approx(q.saturation_fraction(acts[1]).item())
    assert "saturation" not in step0["layers"][0]["out"]  # a Linear is not bounded
    twin_params = dict(twin.named_parameters())
    for p in step0["params"]:
        name = p["name"]
        assert p["grad_data"] == pytest.approx((twin_params[name].grad.std() / before[name].std()).item(), rel=1e-5)
        after = dict(model.named_parameters())[name]
        direct = ((after.detach() - before[name]).std() / before[name].std()).item()
        assert p["update_data"] == pytest.approx(direct, rel=1e-5)
    assert rec.records[-1]["kind"] == "init"
    assert rec.records[-1]["expected"] == pytest.approx(q.expected_init_loss(5))

    drive(rec, view, 1, x, y, opt)  # not sampled: no hooks attached, nothing recorded
    assert len(rec.steps()) == 1 and all_hooks_gone(model)
    drive(rec, view, 2, x, y, opt)  # sampled (the last step)
    assert [r["step"] for r in rec.steps()] == [0, 2] and all_hooks_gone(model)
    assert read_records(tmp_path / DIAGNOSTICS) == rec.records


def test_hooks_attached_during_a_sampled_step_only():
    model = TinyNet()
    view = fake_view(model)
    rec = Recorder(schedule=SampleSchedule(every=2, dense=0), probe=False)
    rec.on_train_start(view)
    rec.on_step_start(view, 0)
    assert all(m._forward_hooks for _, m in leaf_layers(model))
    rec._remove_handles()
    assert all_hooks_gone(model)
    rec.on_step_start(view, 1)
    assert all_hooks_gone(model)


class ListSink(Sink):
    """A sink that keeps what it is handed: the records and the events passed on to it."""

    def __init__(self, every_histogram: bool):
        self.every_histogram = every_histogram
        self.written, self.events = [], []

    def write(self, record):
        self.written.append(record)

    def on_train_start(self, view):
        self.events.append("on_train_start")

    def on_step_end(self, view, step, loss):
        self.events.append(("on_step_end", step))

    def on_eval(self, view, step, losses):
        self.events.append(("on_eval", step))

    def on_train_end(self, view):
        self.events.append("on_train_end")


@pytest.mark.parametrize("every_histogram", [False, True])
def test_every_sink_gets_every_record_and_the_events_that_need_no_hook(every_histogram):
    torch.manual_seed(0)
    model = TinyNet()
    view = fake_view(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sinks = [ListSink(every_histogram), ListSink(False)]
    rec = Recorder(schedule=SampleSchedule(every=2, dense=1), sinks=sinks)
    rec.on_train_start(view)
    x, y = view.train_examples.x[:8], view.train_examples.y[:8]
    for step in range(3):
        drive(rec, view, step, x, y, opt)
    rec.on_eval(view, 3, {"dev": 1.0})
    rec.on_train_end(view)
    for sink in sinks:
        assert sink.written == rec.records
        assert sink.events == ["on_train_start", *[("on_step_end", s) for s in range(3)], ("on_eval", 3),
                               "on_train_end"]
    last = rec.steps()[-1]
    assert all(("hist" in layer["out"]) == (every_histogram or layer["name"] in ("layers.1", "layers.3"))
               for layer in last["layers"])  # without it, the bounded layers': those the figures draw
    params = dict(model.named_parameters())
    for p in last["params"]:
        assert ("hist" in p["grad"]) == (every_histogram or len(p["shape"]) == 2)
        assert ("data_after" in p) == every_histogram
        if every_histogram:  # the parameter after the step: the weights the model holds now
            after, value = p["data_after"], params[p["name"]].detach()
            assert (after["n"], after["min"], after["max"]) == (value.numel(), pytest.approx(value.min().item()),
                                                                pytest.approx(value.max().item()))
            assert after["mean"] == pytest.approx(value.mean().item(), abs=1e-6)
            width = (after["hist_hi"] - after["hist_lo"]) / len(after["hist"])
            inside = sum(after["hist"]) * width * after["n"]
            assert inside + after["hist_below"] + after["hist_above"] == pytest.approx(value.numel())


@pytest.mark.slow
def test_recorder_with_charlab_train_records_the_mlp_in_memory_and_probe():
    rec = Recorder(schedule=SampleSchedule(every=10, dense=2), probe=True)
    result = charlab.train(preset="mlp-bn", steps=21, n_samples=0, observers=[rec], eval_interval=1000)
    assert [r["step"] for r in rec.steps()] == [0, 1, 10, 20]
    assert all_hooks_gone(result.model)
    meta = rec.records[0]
    assert meta["kind"] == "meta" and meta["batch_size"] == 32 and meta["vocab_size"] == 27
    kinds = {layer["name"]: layer["type"] for layer in meta["layers"]}
    assert kinds["layers.3"] == "BatchNorm1d" and kinds["layers.4"] == "Tanh"
    probe = rec.records[-1]
    assert probe["kind"] == "probe" and probe["examples"] == sum(len(w) + 1 for w in result.splits["train"])
    assert probe["bounded"][0]["name"] == "layers.4" and probe["batchnorm"][0]["name"] == "layers.3"
    assert len(probe["bounded"][0]["saturation_map"]) == 32  # one batch of examples x units
    assert rec.steps()[0]["loss"] == pytest.approx(result.step0_loss, rel=1e-6)
