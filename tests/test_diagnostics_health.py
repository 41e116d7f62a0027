"""The lecture's scenarios at small step counts, and every rule on a broken and a healthy model."""

from __future__ import annotations

import functools

import pytest
import torch

import charlab
from charlab.diagnostics.health import check, worst
from charlab.diagnostics.probe import full_pass
from charlab.diagnostics.recorder import Recorder
from charlab.diagnostics.sampling import SampleSchedule
from charlab.nn.layers import Linear

STEPS = 25  # enough sampled steps for the LATEST window; the lecture's problems show from step 0
SCHEDULE = SampleSchedule(every=10, dense=3)
DEEP = dict(preset="mlp", n_layers=5, n_hidden=100, norm="none", init="kaiming")


@functools.cache
def diagnosed(**kw) -> tuple:
    """(verdicts, records) of a short run; cached: several rules read the same run."""
    rec = Recorder(schedule=SCHEDULE, probe=True)
    charlab.train(steps=STEPS, n_samples=0, observers=[rec], schedule="constant", eval_interval=1000, **kw)
    return check(rec.records), rec.records


def status(rule: str, **kw) -> str | None:
    return worst(diagnosed(**kw)[0], rule)


@pytest.mark.slow
def test_naive_mlp_fails_loss_at_init_and_saturation_mlp_bn_passes_both():
    assert status("loss at init", preset="mlp") == "fail"
    assert status("saturation", preset="mlp") == "fail"
    assert status("loss at init", preset="mlp-bn") == "pass"
    assert status("saturation", preset="mlp-bn") == "pass"


@pytest.mark.slow
def test_sgd_lr_0001_flagged_too_low_by_update_data():
    verdict = next(v for v in diagnosed(preset="mlp-bn", lr=0.001)[0] if v.rule == "update:data")
    assert verdict.status == "fail" and verdict.value < -4.5 and "too low" in verdict.cause
    assert status("update:data", preset="mlp-bn") == "pass"


@pytest.mark.slow
def test_five_layer_tanh_at_gain_half_is_vanishing_and_bn_gain_5_3_is_not():
    verdicts = diagnosed(**DEEP, gain=0.5)[0]
    acts = next(v for v in verdicts if v.rule == "activations across layers")
    assert acts.status == "fail" and acts.cause.startswith("vanishing")
    assert worst(verdicts, "gradients across layers") == "fail"
    healthy = dict(DEEP, norm="batchnorm", gain=5 / 3)
    assert status("activations across layers", **healthy) == "pass"
    assert status("gradients across layers", **healthy) != "fail"


def test_every_verdict_has_the_documented_keys_and_a_cause_when_not_passing():
    for v in diagnosed(preset="mlp")[0]:
        d = v.to_dict()
        assert set(d) == {"rule", "status", "layer", "value", "threshold", "cause", "fix"}
        assert d["status"] in ("pass", "warn", "fail")
        assert (d["cause"] is None) == (d["status"] == "pass") and (d["fix"] is None) == (d["status"] == "pass")


def rules_of(model, train_cfg_overrides=None, steps=STEPS) -> list:
    """Verdicts of a short training of a hand-modified model (built by charlab.train's pieces)."""
    from charlab.api import prepare_data, resolve_config
    from charlab.data import build_examples
    from charlab.training.loop import Trainer
    _, cfg = resolve_config("mlp-bn", steps=steps, schedule="constant", eval_interval=1000,
                            **(train_cfg_overrides or {}))
    vocab, splits = prepare_data(None, cfg.seed)
    ex = {k: build_examples(splits[k], vocab, "window", 3) for k in ("train", "dev")}
    rec = Recorder(schedule=SCHEDULE, probe=True)
    Trainer(model, ex["train"], ex["dev"], cfg, [rec]).fit()
    return check(rec.records)


def build(**kw):
    from charlab.api import resolve_config
    from charlab.models import build_model
    model_cfg, _ = resolve_config(**kw)
    model_cfg.vocab_size = 27
    return build_model(model_cfg, torch.Generator().manual_seed(0))


@pytest.mark.slow
def test_grad_data_outlier_broken_and_healthy():
    model = build(**DEEP, gain=5 / 3)
    with torch.no_grad():
        model.layers[4].weight.mul_(1000)  # the second hidden Linear: 1000x too large
    assert worst(rules_of(model), "grad:data outlier") == "fail"
    assert status("grad:data outlier", **dict(DEEP, norm="batchnorm", gain=5 / 3)) == "pass"


@pytest.mark.slow
def test_dead_units_broken_and_healthy():
    model = build(preset="mlp", init="kaiming")
    with torch.no_grad():
        model.layers[2].weight[:40].zero_()
        model.layers[2].bias[:40].fill_(50.0)  # 40 of 200 units: tanh(50) = 1 on every example
    verdict = next(v for v in rules_of(model, steps=5) if v.rule == "dead units")
    assert verdict.status == "fail" and verdict.value == pytest.approx(40 / 200)
    assert status("dead units", preset="mlp-bn") == "pass"


@pytest.mark.slow
def test_batchnorm_batch_size_broken_and_healthy():
    assert worst(rules_of(build(preset="mlp-bn"), {"batch_size": 2}, steps=5), "batchnorm batch size") == "fail"
    assert status("batchnorm batch size", preset="mlp-bn") == "pass"


@pytest.mark.slow
def test_bias_before_batchnorm_broken_and_healthy():
    model = build(preset="mlp-bn")
    model.layers._modules["2"] = Linear(30, 200, bias=True, gain=5 / 3)
    verdict = next(v for v in rules_of(model, steps=5) if v.rule == "bias before batchnorm")
    assert verdict.status == "warn" and verdict.layer == "layers.2"
    assert status("bias before batchnorm", preset="mlp-bn") == "pass"


@pytest.mark.slow
def test_batchnorm_running_stats_broken_and_healthy():
    _, records = diagnosed(preset="mlp-bn")  # momentum 0.001 after 25 steps: running stats still ~(0, 1)
    verdicts = check(records)
    assert worst(verdicts, "batchnorm running stats") == "fail"
    assert worst(verdicts, "train vs eval mode") != "pass"
    # healthy: the same model with its running statistics recomputed over the whole training set
    from charlab.api import prepare_data
    from charlab.data import build_examples
    model = build(preset="mlp-bn")
    vocab, splits = prepare_data(None, 42)
    train = build_examples(splits["train"], vocab, "window", 3)
    bn = model.layers[3]
    with torch.no_grad():
        h = model.layers[2](model.layers[1](model.layers[0](train.x)))  # (N, 200) the BatchNorm's input
        bn.running_mean.copy_(h.mean(0))
        bn.running_var.copy_(h.var(0))
    probe = full_pass(model, train, 32, 42)
    calibrated = check([r for r in records if r["kind"] != "probe"] + [probe])
    assert worst(calibrated, "batchnorm running stats") == "pass"
    assert worst(calibrated, "train vs eval mode") != "fail"
