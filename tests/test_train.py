"""Training: the loop lowers the loss, is deterministic, applies its schedule and keeps the best weights."""

from __future__ import annotations

import json
import math

import pytest
import torch

import charlab
from charlab.api import resolve_config
from charlab.config import TrainConfig
from charlab.data import SPLITS, Vocab, build_examples
from charlab.data.splits import split_items
from charlab.inference.evaluate import split_loss
from charlab.training.optim import FusedAdamW
from charlab.models import build_model
from charlab.rundir import load_run, read_metrics
from charlab.rundir.store import train_line
from charlab.training.lr_schedule import Schedule
from charlab.training.events import Observer
from charlab.training.loop import Trainer
from charlab.training.optim import PlainSGD

SHORT_STEPS = 300  # enough for mlp-bn to fall well below its init loss of ~3.3 on names
LEARNED_LOSS = 2.9  # after SHORT_STEPS the loss is ~2.6-2.7; at init ~3.3
N_SAMPLES = 8


class Recorder(Observer):
    """Per-step losses and learning rates (an event covers the steps since the last one: the fast
    paths take several steps between events)."""

    def __init__(self):
        self.losses: list[float] = []
        self.lrs: list[float] = []

    def on_step_end(self, view, step, loss):
        assert float(loss) == float(view.losses(step, step + 1)[0])
        self.losses += view.losses(view.chunk_start, view.step).tolist()
        self.lrs += [view.lr(s) for s in range(view.chunk_start, view.step)]


class OptimizerLrs(Observer):
    """The learning rate the optimizer holds at each step's end (the one its step used)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.lrs: list[float] = []

    def on_step_end(self, view, step, loss):
        self.lrs.append(self.optimizer.param_groups[0]["lr"])


class Sabotage(Observer):
    """From step ``after`` on, overwrite the output layer each step: later dev losses get worse."""

    def __init__(self, after: int, value: float):
        self.after = after
        self.value = value

    def on_step_end(self, view, step, loss):
        if step >= self.after:
            output = view.model.output_layer
            with torch.no_grad():
                output.weight.fill_(self.value)
                output.bias[1:].fill_(self.value)
                output.bias[0] = 0.0


def short_run(seed: int = 42, steps: int = SHORT_STEPS, n_samples: int = N_SAMPLES, observers=(), **kwargs):
    recorder = Recorder()
    result = charlab.train(preset="mlp-bn", steps=steps, seed=seed, n_samples=n_samples,
                           observers=[recorder, *observers], **kwargs)
    return result, recorder


@pytest.fixture(scope="module")
def seed42_runs():
    return short_run(42), short_run(42)


def test_short_run_lowers_loss(seed42_runs):
    (result, recorder), _ = seed42_runs
    assert len(recorder.losses) == SHORT_STEPS
    assert result.step0_loss == recorder.losses[0]
    assert abs(result.step0_loss - result.expected_init_loss) < 0.1
    assert result.expected_init_loss == pytest.approx(math.log(27))
    assert result.losses["train"] < LEARNED_LOSS and result.losses["dev"] < LEARNED_LOSS
    tail = sum(recorder.losses[-50:]) / 50
    assert tail < result.step0_loss - 0.4


def test_same_seed_same_losses_and_samples(seed42_runs):
    (a, rec_a), (b, rec_b) = seed42_runs
    assert rec_a.losses == rec_b.losses
    assert a.losses == b.losses
    assert a.samples == b.samples and len(a.samples) == N_SAMPLES
    for (name, wa), wb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(wa, wb), name


@pytest.mark.slow
def test_different_seed_differs(seed42_runs):
    (a, rec_a), _ = seed42_runs
    c, rec_c = short_run(seed=43, steps=50)
    assert rec_c.losses != rec_a.losses[:50]
    assert c.splits["train"] != a.splits["train"]
    assert [s["text"] for s in c.samples] != [s["text"] for s in a.samples]


def small_trainer(names, observers=(), **overrides) -> Trainer:
    model_cfg, train_cfg = resolve_config("mlp-bn", **overrides)
    vocab = Vocab.from_items(names)
    model_cfg.vocab_size = vocab.size
    model = build_model(model_cfg, torch.Generator().manual_seed(train_cfg.seed))
    split = split_items(names, train_cfg.seed)
    train, dev = (build_examples(split[k], vocab, "window", model_cfg.block_size) for k in ("train", "dev"))
    return Trainer(model, train, dev, train_cfg, observers)


@pytest.mark.slow
def test_trainer_applies_step_schedule(names):
    _, recorder = short_run(steps=20, lr=0.5, decay_factor=0.1, decay_at=0.5, n_samples=0)
    assert recorder.lrs == [0.5] * 10 + [pytest.approx(0.05)] * 10
    # the optimizer's own lr is what the autograd step hands it; the hand-derived SGD step applies the
    # schedule's lr itself (tests/test_speed_paths.py checks its losses against this path)
    trainer = small_trainer(names, steps=20, lr=0.5, decay_factor=0.1, decay_at=0.5, fast_path="off")
    used = OptimizerLrs(trainer.optimizer)
    trainer.fit(last=(used,))
    assert isinstance(trainer.optimizer, PlainSGD) and used.lrs == recorder.lrs


def test_plain_sgd_is_torch_sgd_bit_for_bit():
    """The loop's SGD is one foreach kernel; its updates equal torch.optim.SGD's exactly."""
    weights = [torch.randn(5, 3, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    ours = [w.clone().requires_grad_() for w in weights]
    torch_ = [w.clone().requires_grad_() for w in weights]
    plain, reference = PlainSGD(ours, lr=0.1), torch.optim.SGD(torch_, lr=0.1, foreach=True)
    for step in range(3):
        for params, optimizer in ((ours, plain), (torch_, reference)):
            for group in optimizer.param_groups:
                group["lr"] = 0.1 / (step + 1)
            optimizer.zero_grad()
            sum((p * p * (i + 1)).sum() for i, p in enumerate(params)).backward()
            optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(ours, torch_))
    assert plain.state_dict()["state"] == {}


@pytest.mark.slow
def test_adamw_trains(names):
    result, _ = short_run(steps=200, optimizer="adamw", lr=0.01, weight_decay=0.01, n_samples=0)
    assert result.losses["train"] < LEARNED_LOSS
    optimizer = small_trainer(names, optimizer="adamw", lr=0.01, weight_decay=0.01).optimizer
    assert isinstance(optimizer, FusedAdamW) and optimizer.param_groups[0]["weight_decay"] == 0.01


@pytest.mark.slow
def test_best_dev_weights_are_kept_and_saved(tmp_path):
    """Weights wrecked after step 40: the model returned and saved is the one of the best evaluation."""
    out = tmp_path / "run"
    result, _ = short_run(steps=100, eval_interval=20, schedule="constant", out=out, n_samples=0,
                          observers=[Sabotage(after=40, value=0.5)])
    evals = [r for r in read_metrics(out) if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [20, 40, 60, 80, 100]
    best = min(evals, key=lambda r: r["dev"])
    assert best["step"] in (20, 40) and best["dev"] < evals[-1]["dev"]
    assert result.best_step == best["step"]
    assert result.losses["dev"] == pytest.approx(best["dev"], rel=1e-6)
    loaded = load_run(out)
    dev = build_examples(loaded.splits["dev"], loaded.vocab, "window", loaded.model_cfg.block_size)
    assert split_loss(loaded.model, dev) == pytest.approx(best["dev"], rel=1e-6)


def test_diverged_weights_never_replace_the_best(names):
    """A NaN dev loss (diverged weights) is never taken as the best: the trainer alone, no guards."""
    model_cfg, train_cfg = resolve_config("mlp-bn", steps=60, eval_interval=20, schedule="constant")
    vocab = Vocab.from_items(names)
    model_cfg.vocab_size = vocab.size
    model = build_model(model_cfg, torch.Generator().manual_seed(train_cfg.seed))
    split = split_items(names, train_cfg.seed)
    train, dev = (build_examples(split[k], vocab, "window", 3) for k in ("train", "dev"))
    state = Trainer(model, train, dev, train_cfg, [Sabotage(after=30, value=float("nan"))]).fit()
    assert [e.step for e in state.evals] == [20, 40, 60]
    assert math.isfinite(state.evals[0].dev) and math.isnan(state.evals[-1].dev)
    assert state.best_step == 20 and state.best_dev == state.evals[0].dev
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert split_loss(model, dev) == pytest.approx(state.best_dev, rel=1e-6)


def test_metrics_file_has_every_step_and_final(tmp_path):
    out = tmp_path / "run"
    result, recorder = short_run(steps=30, out=out, n_samples=0)
    records = read_metrics(out)
    train_losses = [r["loss"] for r in records if r["event"] == "train"]
    assert train_losses == pytest.approx(recorder.losses)
    final = [r for r in records if r["event"] == "final"]
    assert len(final) == 1 and all(final[0][k] == result.losses[k] for k in SPLITS)


# --- lr_schedule.py ----------------------------------------------------------------------------


def test_step_schedule_is_the_lectures():
    schedule = Schedule(TrainConfig(steps=200_000, lr=0.1, schedule="step", decay_at=0.5, decay_factor=0.1))
    assert schedule.lr(0) == 0.1 and schedule.lr(99_999) == 0.1
    assert schedule.lr(100_000) == pytest.approx(0.01) and schedule.lr(199_999) == pytest.approx(0.01)


def test_plateau_schedule_decays_after_patience_evaluations():
    schedule = Schedule(TrainConfig(lr=1.0, schedule="plateau", patience=3, decay_factor=0.1))
    expected = []
    for dev in [3.0, 2.5, 2.6, 2.5, 2.7]:  # best 2.5; then 3 evaluations without a new best
        schedule.observe_dev(dev)
        expected.append(schedule.lr(0))
    assert expected == [1.0, 1.0, 1.0, 1.0, pytest.approx(0.1)]
    for dev in [2.4, 2.45, 2.5]:  # an improvement resets the count; two bad evaluations: no decay
        schedule.observe_dev(dev)
    assert schedule.lr(0) == pytest.approx(0.1)
    schedule.observe_dev(2.41)
    assert schedule.lr(0) == pytest.approx(0.01)


def test_plateau_rule_is_inert_for_other_schedules():
    schedule = Schedule(TrainConfig(lr=0.1, steps=100, schedule="step", patience=1))
    for dev in [1.0, 2.0, 3.0, 4.0]:
        schedule.observe_dev(dev)
    assert schedule.lr(0) == 0.1


def test_schedule_state_round_trips():
    cfg = TrainConfig(lr=1.0, schedule="plateau", patience=1)
    a = Schedule(cfg)
    for dev in [2.0, 2.5, 2.6]:
        a.observe_dev(dev)
    b = Schedule(cfg)
    b.load_state_dict(a.state_dict())
    assert b.lr(0) == a.lr(0) == pytest.approx(0.01)
    assert b.state_dict() == a.state_dict()


def test_cosine_and_constant_schedules():
    cosine = Schedule(TrainConfig(lr=1.0, steps=110, schedule="cosine", warmup_steps=10, min_lr_frac=0.1))
    assert cosine.lr(0) == pytest.approx(0.1) and cosine.lr(9) == pytest.approx(1.0)
    assert cosine.lr(10) == pytest.approx(1.0) and cosine.lr(60) == pytest.approx(0.55)
    assert cosine.lr(110) == pytest.approx(0.1)
    constant = Schedule(TrainConfig(lr=0.3, steps=10, schedule="constant"))
    assert {constant.lr(s) for s in range(10)} == {0.3}


def test_train_metric_lines_are_what_json_writes():
    """metrics.jsonl's per-step lines come from a format string (fast); they must be json.dumps's text,
    for every float a loss can be, and parse back to the same value."""
    losses = [0.0, -0.0, 2.1123094722467446, 1e-300, 5e-324, 1.7976931348623157e308, 3.0, 1e16, 1.5e-7,
              float("nan"), float("inf"), float("-inf")]
    for step, loss in enumerate(losses):
        line = train_line(step, loss)
        assert line == json.dumps({"event": "train", "step": step, "loss": loss}) + "\n"
        back = json.loads(line)["loss"]
        assert back == loss or (math.isnan(back) and math.isnan(loss))
