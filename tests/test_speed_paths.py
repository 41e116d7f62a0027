"""Fast paths against their oracles (no timing here: speed lives in benchmarks/).

- the hand-derived backward pass (``--fast-path eager``) against autograd (``--fast-path off``), in
  float64 (see ``test_hand_derived_backward_matches_autograd`` for why), for every window preset;
- ``--fast-path auto`` (the default): what it picks, and with the diagnostics' Recorder the sampled
  steps on autograd and the others on the hand-derived pass, against autograd on every step;
- the compiled, unrolled path against the eager one, compiled in this process and in the background
  worker; a compile that fails falls back to the eager step with one line on stderr;
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

import charlab.training.compiled as compiled
import charlab.training.hand_backward as hand_backward
import charlab.training.steps as steps_module
from charlab.api import resolve_config
from charlab.data import Vocab, build_examples, read_items
from charlab.data.splits import split_items
from charlab.errors import CharlabError
from charlab.models import build_model
from charlab.inference import sample as sample_module
from charlab.inference.sample import sample_ids
from charlab.inference.window_cache import NextCharCache, all_windows, worth_caching
from charlab.diagnostics.recorder import Recorder
from charlab.diagnostics.sampling import SampleSchedule
from charlab.training.events import Observer
from charlab.training.graph_call import Capture, DirectCall, signature
from charlab.training.loop import Trainer
from charlab.training.steps import AutogradStep, HandDerivedStep

ROOT = Path(__file__).resolve().parents[1]
LOSS_ATOL = 1e-6  # a few float32 ulps at a loss of ~3: the recorded losses are float32
WEIGHT_ATOL = 1e-5  # float32 rounding of a few dozen SGD steps; in float64 a million times more than needed
SEED = 42


@pytest.fixture(scope="module")
def names():
    items = read_items(None)
    splits = split_items(items, SEED)
    return Vocab.from_items(items), splits


def trainer(names, steps, dtype=torch.float32, observers=(), preset="mlp-bn", **overrides):
    vocab, splits = names
    mc, tc = resolve_config(preset, steps=steps, **{"eval_interval": max(steps // 2, 1), **overrides})
    mc.vocab_size = vocab.size
    model = build_model(mc, torch.Generator().manual_seed(tc.seed)).to(dtype)
    ex = {k: build_examples(splits[k], vocab, model.example_kind, mc.block_size) for k in ("train", "dev")}
    return Trainer(model, ex["train"], ex["dev"], tc, observers)


def fit(names, steps, dtype=torch.float32, observers=(), preset="mlp-bn", **overrides):
    run = trainer(names, steps, dtype, observers, preset, **overrides)
    state = run.fit()
    return torch.tensor(state.losses), run.model


def assert_same_run(a, b):
    losses_a, model_a = a
    losses_b, model_b = b
    assert losses_a.shape == losses_b.shape
    torch.testing.assert_close(losses_a, losses_b, atol=LOSS_ATOL, rtol=0)
    sd_b = model_b.state_dict()
    for key, value in model_a.state_dict().items():
        torch.testing.assert_close(value, sd_b[key], atol=WEIGHT_ATOL, rtol=0, msg=key)


@pytest.mark.parametrize("preset, overrides", [
    ("mlp-bn", {}),  # the lecture's mlp-bn with SGD and the step decay
    ("mlp", {}),  # naive init, Linear with bias, no BatchNorm
    ("deep-bn", {}),  # five BatchNorm blocks
    ("wavenet", {}),  # pairs fused over 3 levels, BatchNorm over (N, L, C)
    ("mlp-bn", {"n_layers": 2, "n_hidden": 24, "bn_momentum": 0.1}),  # several BatchNorm blocks
    ("mlp-bn", {"norm": "none", "init": "fix-tanh", "n_hidden": 24}),  # Linear with bias, no BatchNorm
    ("mlp-bn", {"activation": "none", "n_hidden": 24, "batch_size": 8}),
    ("mlp-bn", {"optimizer": "adamw", "lr": 0.01, "grad_clip": 1.0, "n_hidden": 24}),  # the trainer's optimizer
    ("wavenet", {"optimizer": "adamw", "lr": 0.01, "grad_clip": 1.0, "n_hidden": 24, "block_size": 4}),
    ("fast", {"steps": 40, "batch_size": 64}),  # AdamW with warmup and cosine, as `--preset fast`
])
def test_hand_derived_backward_matches_autograd(names, preset, overrides):
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
    overrides = {"steps": steps, **overrides}
    assert_same_run(fit(names, dtype=torch.float64, preset=preset, fast_path="off", **overrides),
                    fit(names, dtype=torch.float64, preset=preset, fast_path="eager", **overrides))


@pytest.mark.parametrize("preset, overrides, chosen, compiles", [
    ("mlp-bn", {}, HandDerivedStep, False),  # 40 steps: too short to pay for a compile
    ("mlp-bn", {"steps": steps_module.AUTO_COMPILE_MIN_STEPS}, HandDerivedStep, True),
    ("deep-bn", {"steps": steps_module.AUTO_COMPILE_MIN_STEPS}, HandDerivedStep, True),
    ("wavenet", {"steps": steps_module.AUTO_COMPILE_MIN_STEPS}, HandDerivedStep, True),
    ("fast", {}, HandDerivedStep, False),  # AdamW: the eager hand-derived step
    ("mlp-bn", {"grad_clip": 1.0, "steps": steps_module.AUTO_COMPILE_MIN_STEPS}, HandDerivedStep, False),
    ("gru", {}, AutogradStep, False),  # a sequence model
    ("transformer", {}, AutogradStep, False),
])
def test_auto_picks_the_fastest_path_that_applies(names, monkeypatch, preset, overrides, chosen, compiles):
    monkeypatch.setattr(compiled, "cpus", lambda: 2)  # the worker needs a second CPU
    monkeypatch.setattr(steps_module, "cpus", lambda: 2)
    overrides = {"steps": 40, "fast_path": "auto", **overrides}
    if preset in ("gru", "transformer"):
        overrides["block_size"] = 16
    stepper = trainer(names, preset=preset, **overrides).stepper
    assert type(stepper) is chosen
    assert (getattr(stepper, "compiler", None) is not None) == compiles
    monkeypatch.setattr(steps_module, "cpus", lambda: 1)  # one CPU: no background compile, never slower
    assert getattr(trainer(names, preset=preset, **overrides).stepper, "compiler", None) is None


class AfterBackward(Observer):
    def on_after_backward(self, view, step):
        pass


def test_auto_never_refuses(names):
    """An observer that needs autograd on every step (it cannot say which) gets autograd, where
    ``--fast-path eager`` refuses (``test_unsupported_settings_are_refused``)."""
    assert type(trainer(names, 4, observers=[AfterBackward()], fast_path="auto").stepper) is AutogradStep


class StepKinds(Observer):
    """Which steps emitted ``on_after_backward`` (the autograd ones) next to a Recorder."""

    def __init__(self, every):
        self.every, self.autograd = every, []

    def needs_autograd(self, step):
        return step % self.every == 0

    def on_after_backward(self, view, step):
        self.autograd.append(step)


def test_diagnose_samples_on_autograd_and_trains_fast_between(names):
    """With the Recorder, auto runs the sampled steps on autograd (the hooks need it) and the others
    on the hand-derived pass; the run is the autograd run's and so are the records. float64, for the
    reason of ``test_hand_derived_backward_matches_autograd``: the two paths then agree far inside
    the tolerances on any CPU."""
    steps, schedule = 30, SampleSchedule(every=7, dense=3)
    runs, records = {}, {}
    for path in ("off", "auto"):
        recorder, kinds = Recorder(schedule), StepKinds(every=5)
        runs[path] = fit(names, steps, torch.float64, observers=[recorder, kinds], fast_path=path)
        records[path] = recorder.steps()
        if path == "auto":
            expected = sorted(set(schedule.steps(steps)) | set(range(0, steps, 5)))
            assert kinds.autograd == expected  # the sampled steps only
        else:
            assert kinds.autograd == list(range(steps))
    assert_same_run(runs["off"], runs["auto"])
    assert [r["step"] for r in records["auto"]] == [r["step"] for r in records["off"]] == schedule.steps(steps)
    for a, b in zip(records["off"], records["auto"]):
        assert a["loss"] == pytest.approx(b["loss"], abs=LOSS_ATOL)
        for pa, pb in zip(a["params"], b["params"]):
            assert pa["grad"]["std"] == pytest.approx(pb["grad"]["std"], rel=1e-6), pa["name"]


def test_a_failed_compile_falls_back_to_the_eager_step_with_one_line(names, monkeypatch, capsys, tmp_path):
    """No C++ compiler, an inductor error: one line on stderr, then the eager hand-derived step."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))

    def broken(*args):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(compiled, "compile_steps", lambda capture=None: broken)
    overrides = {"n_hidden": 16, "eval_interval": 5}
    fallen = fit(names, 11, fast_path="compile", **overrides)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compiling the SGD steps failed" in err[0] and "no C++ compiler" in err[0]
    # the steps of the failed chunk are redone eagerly: the eager run exactly (same kernels, same order)
    eager = fit(names, 11, fast_path="eager", **overrides)
    assert torch.equal(fallen[0], eager[0])


@pytest.mark.slow  # a cold torch.compile takes ~15-90 s
def test_compiled_unrolled_path_matches_eager(names, monkeypatch, tmp_path):
    """float32 is enough here: both paths run SGD, which moves a weight by lr times the gradient's
    rounding difference, never more (no AdamW to amplify it)."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # not the user's cache
    monkeypatch.setattr(hand_backward, "UNROLL_STEPS", 2)  # a short graph compiles quickly
    overrides = {"n_hidden": 16, "eval_interval": 5}  # 5 = two compiled chunks and one eager step
    chunks = Chunks()
    compiled = fit(names, 11, fast_path="compile", observers=[chunks], **overrides)
    assert_same_run(fit(names, 11, fast_path="eager", **overrides), compiled)
    # one on_step_end per span (up to the next evaluation): whole compiled chunks of 2, then the
    # leftover step eagerly; every step's loss readable through the view
    assert chunks.spans == [(0, 5), (5, 10), (10, 11)]
    assert torch.equal(torch.cat(chunks.losses), compiled[0])


class WaitForWorker(Observer):
    """Holds training at ``step`` until the background compile is done, so the switch comes then."""

    def __init__(self, run, step):
        self.run, self.step = run, step

    def on_step_end(self, view, step, loss):
        worker = self.run.stepper.compiler.worker
        if step == self.step and worker is not None:
            worker.wait(timeout=600)


@pytest.mark.slow  # the worker's cold compile takes ~15-90 s
def test_background_compile_switches_to_the_compiled_chunks(names, monkeypatch, tmp_path, capsys):
    """auto: eager steps while the worker compiles, then compiled chunks (from the warm cache) to the
    end; the losses are the eager run's to float rounding (SGD only: see above)."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(hand_backward, "UNROLL_STEPS", 2)
    monkeypatch.setattr(steps_module, "AUTO_COMPILE_MIN_STEPS", 0)
    monkeypatch.setattr(steps_module, "SWITCH_MIN_REMAINING", 0)
    monkeypatch.setattr(steps_module, "cpus", lambda: 2)
    monkeypatch.setattr(compiled, "POLL_EVERY", 1)
    monkeypatch.setattr(steps_module, "SPAN_STEPS", 8)
    overrides = {"n_hidden": 16, "eval_interval": 20}
    run = trainer(names, 20, fast_path="auto", **overrides)
    chunks = Chunks()
    run.observers = (WaitForWorker(run, 7), chunks)
    losses = torch.tensor(run.fit().losses)
    assert capsys.readouterr().err == ""
    assert chunks.spans == [(0, 8), (8, 16), (16, 20)]  # spans of SPAN_STEPS, then the evaluation at 20
    assert run.stepper.compiler.compile_s is not None  # eager while the worker compiled, then compiled chunks
    assert list(tmp_path.glob("charlab-sgd-steps-*.done"))  # the next run compiles at once, from the cache
    assert_same_run(fit(names, 20, fast_path="eager", **overrides), (losses, run.model))


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


@pytest.mark.slow  # a cold torch.compile of a small graph takes ~10 s
def test_the_compiled_graph_called_straight_is_the_compiled_function(names, monkeypatch, tmp_path):
    """``DirectCall`` (graph_call.py) skips torch.compile's guards: after the first compiled chunk it must
    run the same graph on the same tensors, mutating the same parameters and buffers in place, as a
    call through ``torch.compile`` does; float64, so the two agree to rounding on any CPU."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    vocab, splits = names
    mc, _ = resolve_config("mlp-bn", n_hidden=16)
    mc.vocab_size = vocab.size
    model = build_model(mc, torch.Generator().manual_seed(0)).double()
    hand = hand_backward.HandBackward(model, unroll=2)
    ex = build_examples(splits["train"][:200], vocab, "window", mc.block_size)
    x, y, lrs = ex.x[:64].view(2, 32, -1), ex.y[:64].view(2, 32), torch.tensor([0.1, 0.05], dtype=torch.float64)
    capture = Capture(compiled.INDUCTOR_OPTIONS)
    function = compiled.compile_steps(capture)
    before = [t.clone() for t in (*hand.params, *hand.buffers)]
    through = hand.chunk(function, x, y, lrs)  # compiles; the parameters take the two steps
    after_compiled = [t.clone() for t in (*hand.params, *hand.buffers)]
    args = compiled.Compiler.arguments(hand.params, hand.buffers, x, y, lrs)
    direct = DirectCall.build(capture, signature(hand.plan, args), args, compiled_since=0)
    assert direct is not None
    for t, b in zip((*hand.params, *hand.buffers), before):
        t.copy_(b)  # the same two steps again, from the same weights, on the direct call
    straight = direct(compiled.Compiler.arguments(hand.params, hand.buffers, x, y, lrs))
    torch.testing.assert_close(straight, through, rtol=0, atol=1e-12)
    for t, a, b in zip((*hand.params, *hand.buffers), after_compiled, before):
        torch.testing.assert_close(t, a, rtol=0, atol=1e-12)
        assert not torch.equal(t, b)  # it moved: the graph updates the tensors in place
