"""`charlab train --tensorboard`: the event files, read back with TensorBoard's own reader, hold the
run's numbers (the metrics file and the saved weights are the oracle), and they are the diagnostics
recorder's records (`--diagnose` writes the same records as JSON lines): one collector, two sinks."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from charlab.cli.main import main
from charlab.diagnostics.sampling import DEFAULT_SCHEDULE
from charlab.training.lr_schedule import Schedule
from charlab.rundir import load_run
from charlab.diagnostics import tensorboard
from charlab.diagnostics.sinks import read_records
from charlab.diagnostics.tensorboard import SCALAR_EVERY, TensorBoardSink
from charlab.rundir import DIAGNOSTICS, TENSORBOARD_DIR
from charlab.training.events import watches

STEPS = 250  # two full loss windows of SCALAR_EVERY and a partial one; the final eval is the only one
HIDDEN = 32
BATCH = 32


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tb") / "run"
    code = main(["train", "--steps", str(STEPS), "--n-hidden", str(HIDDEN), "--batch-size", str(BATCH),
                 "--eval-interval", str(10 * STEPS), "--samples", "0", "--device", "cpu", "--out", str(out),
                 "--tensorboard", "--diagnose", "--json"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def events(run_dir):
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def metrics(run_dir, event):
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["event"] == event]


def test_train_loss_is_the_window_mean_of_the_logged_losses(run_dir, events):
    losses = [r["loss"] for r in metrics(run_dir, "train")]
    points = events.Scalars("loss/train")
    ends = [s for s in range(STEPS) if (s + 1) % SCALAR_EVERY == 0] + [STEPS - 1]
    assert [p.step for p in points] == ends
    start = 0
    for point in points:
        window = losses[start:point.step + 1]
        assert point.value == pytest.approx(sum(window) / len(window), rel=1e-6)
        start = point.step + 1


def test_dev_loss_and_lr(run_dir, events):
    (dev,) = events.Scalars("loss/dev")
    (record,) = metrics(run_dir, "eval")
    assert (dev.step, dev.value) == (record["step"], pytest.approx(record["dev"], rel=1e-6))
    schedule = Schedule(load_run(run_dir).train_cfg)
    for point in events.Scalars("lr"):
        assert point.value == pytest.approx(schedule.lr(point.step), rel=1e-6)


def test_histograms_on_the_diagnostics_steps(run_dir, events):
    tags = events.Tags()["histograms"]
    weights = load_file(str(run_dir / "model.safetensors"))  # the final weights: the only eval is the last
    params = [k for k in weights if k.endswith(("weight", "bias"))]
    assert {f"weights/{k}" for k in params} <= set(tags)
    assert {f"gradients/{k}" for k in params} <= set(tags)
    for name in params:
        steps = [h.step for h in events.Histograms(f"weights/{name}")]
        assert steps == DEFAULT_SCHEDULE.steps(STEPS)
        last = events.Histograms(f"weights/{name}")[-1].histogram_value
        assert last.num == weights[name].numel()
        assert last.sum == pytest.approx(float(weights[name].double().sum()), rel=1e-5, abs=1e-5)
        assert last.min == pytest.approx(float(weights[name].min()))
        assert last.max == pytest.approx(float(weights[name].max()))


def test_activations_saturation_and_update_ratios(run_dir, events):
    tanh = [t for t in events.Tags()["histograms"] if t.startswith("activations/")]
    assert len(tanh) == 6  # embedding, flatten, linear, batchnorm, tanh, output linear
    (sat_tag,) = [t for t in events.Tags()["scalars"] if t.startswith("saturation/")]
    tanh_hist = events.Histograms("activations/" + sat_tag.split("/", 1)[1])
    for h in tanh_hist:
        assert h.histogram_value.num == BATCH * HIDDEN
        assert -1.0 <= h.histogram_value.min and h.histogram_value.max <= 1.0
    for point in events.Scalars(sat_tag):
        assert 0.0 <= point.value <= 1.0
    ratios = [t for t in events.Tags()["scalars"] if t.startswith("update_data/")]
    assert len(ratios) == 3  # the three 2-D weights: embedding table, hidden and output Linear
    for tag in ratios:
        values = [p.value for p in events.Scalars(tag)]
        assert all(math.isfinite(v) and v > 0 for v in values)


def hist_std(h) -> float:
    """Unbiased std of the values a TensorBoard histogram summarises (from its count, sum, sum of squares)."""
    return math.sqrt((h.sum_squares - h.sum ** 2 / h.num) / (h.num - 1))


def test_update_ratio_is_lr_times_grad_std_over_weight_std(run_dir, events):
    """SGD moves a weight by -lr * grad, so on consecutive sampled steps s-1, s the ratio must be
    lr * std(grad_s) / std(weight after s-1): three numbers the histograms hold independently."""
    lr = load_run(run_dir).train_cfg.lr
    for tag in [t for t in events.Tags()["scalars"] if t.startswith("update_data/")]:
        name = tag.split("/", 1)[1]
        ratio = {p.step: p.value for p in events.Scalars(tag)}
        grads = {h.step: h.histogram_value for h in events.Histograms(f"gradients/{name}")}
        weights = {h.step: h.histogram_value for h in events.Histograms(f"weights/{name}")}
        checked = [s for s in ratio if s - 1 in weights and s < STEPS // 2]  # first half: lr not yet decayed
        assert len(checked) >= 10
        for s in checked:
            assert ratio[s] == pytest.approx(lr * hist_std(grads[s]) / hist_std(weights[s - 1]), rel=1e-3)


@pytest.fixture(scope="module")
def steps(run_dir):
    return {r["step"]: r for r in read_records(run_dir / DIAGNOSTICS) if r["kind"] == "step"}


def test_events_are_the_recorded_numbers(run_dir, events, steps):
    """Every sampled scalar and histogram summary in the event files equals the JSON-lines record of
    that step: the two sinks were handed the same records."""
    assert sorted(steps) == DEFAULT_SCHEDULE.steps(STEPS)
    for step, record in steps.items():
        for p in record["params"]:
            if len(p["shape"]) == 2:
                (point,) = [e for e in events.Scalars(f"update_data/{p['name']}") if e.step == step]
                assert point.value == pytest.approx(p["update_data"], rel=1e-6)
            (weights,) = [h.histogram_value for h in events.Histograms(f"weights/{p['name']}") if h.step == step]
            assert weights.num == p["data_after"]["n"]
            assert weights.sum / weights.num == pytest.approx(p["data_after"]["mean"], rel=1e-6, abs=1e-9)
        for layer in record["layers"]:
            (acts,) = [h.histogram_value for h in events.Histograms(f"activations/{layer['name']}")
                       if h.step == step]
            assert (acts.num, acts.min, acts.max) == (layer["out"]["n"], pytest.approx(layer["out"]["min"]),
                                                      pytest.approx(layer["out"]["max"]))
            assert hist_std(acts) == pytest.approx(layer["out"]["std"], rel=1e-4)
            assert sum(acts.bucket) == pytest.approx(acts.num, rel=1e-5)  # outliers in the end buckets
            if "saturation" in layer["out"]:
                (point,) = [e for e in events.Scalars(f"saturation/{layer['name']}") if e.step == step]
                assert point.value == pytest.approx(layer["out"]["saturation"], rel=1e-6)


def test_the_sink_never_hooks_the_model():
    """No second set of hooks: the sink sees no event a hook would need and holds no hook or clone."""
    assert not watches(TensorBoardSink("unused"), "on_step_start")
    assert not watches(TensorBoardSink("unused"), "on_after_backward")
    source = open(tensorboard.__file__, encoding="utf-8").read()
    assert "register_" not in source and ".clone(" not in source


def test_tensorboard_alone_writes_no_diagnostics_file(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--steps", "3", "--n-hidden", "8", "--samples", "0", "--device", "cpu",
                 "--out", str(out), "--tensorboard", "--json"]) == 0
    assert not (out / DIAGNOSTICS).exists()
    acc = EventAccumulator(str(out / TENSORBOARD_DIR), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    assert [p.step for p in acc.Scalars("loss/train")] == [2]
    weight = next(k for k in load_file(str(out / "model.safetensors")) if k.endswith("weight"))
    assert [h.step for h in acc.Histograms(f"weights/{weight}")] == [0, 1, 2]
