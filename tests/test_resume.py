"""Exact resume: a run stopped (signal, SIGKILL) and resumed has the losses and weights, bit for bit,
of the same run trained without a stop."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from charlab import api
from charlab.training.checkpoint import checkpoint_path, load_checkpoint
from charlab.cli.main import main
from charlab.errors import CharlabError
from charlab.rundir import WEIGHTS, load_weights, read_metrics, read_run_meta
from charlab.training.stopping import TrainingStopped
from charlab.training.events import Observer

from conftest import cli_env

STEPS = 300
STOP_AT = 150  # the step at which the interrupted run receives its signal
EVAL_INTERVAL = 100
CONFIGS = {  # the lecture's SGD with BatchNorm buffers; AdamW state, plateau schedule state, clipping;
    # dropout masks drawn from the model's generators, batches drawn by length
    "mlp-bn-sgd": dict(preset="mlp-bn", fast_path="off"),  # autograd; == needs one deterministic path:
    # `auto` compiles long runs in the background and switches when ready (steps.py), equal only to rounding
    "mlp-adamw-plateau": dict(preset="mlp", optimizer="adamw", lr=0.01, schedule="plateau", patience=1,
                              grad_clip=1.0, checkpoint_interval=40),
    "mlp-bn-eager-fast-path": dict(preset="mlp-bn", fast_path="eager"),
    "lstm-dropout-buckets": dict(preset="lstm", dropout=0.3, recurrent_dropout=0.2, length_buckets=4),
}
KILL_STEPS = 2000  # long enough to be killed mid-run, short enough for the < 40 s budget
KILL_ITEMS = 300  # a small word list: a subprocess spends its time training, not preparing data
KILLS = 2
KILL_DELAY_S = (0.0, 0.8)  # random wait after a checkpoint exists, before SIGKILL
WAIT_S = 60  # a subprocess that writes no checkpoint in this time fails the test


class SignalAt(Observer):
    """Sends this process ``signum`` at the end of the steps that reach ``step``, as a user pressing
    Ctrl-C would; ``sent_at``: the steps done then (the fast paths report spans of several steps)."""

    def __init__(self, step: int, signum: int = signal.SIGINT):
        self.step, self.signum, self.sent_at = step, signum, None

    def on_step_end(self, view, step, loss):
        if self.sent_at is None and step >= self.step - 1:
            self.sent_at = view.step
            os.kill(os.getpid(), self.signum)


def train_losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run) if r["event"] == "train"]


def evals(run: Path) -> list[dict]:
    return [r for r in read_metrics(run) if r["event"] == "eval"]


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_stop_and_resume_equals_uninterrupted(tmp_path, name):
    cfg = dict(CONFIGS[name], steps=STEPS, eval_interval=EVAL_INTERVAL, n_samples=0)
    straight = api.train(out=tmp_path / "straight", **cfg)
    signal_at = SignalAt(STOP_AT)
    with pytest.raises(TrainingStopped) as stopped:
        api.train(out=tmp_path / "stopped", observers=[signal_at], **cfg)
    assert stopped.value.exit_code == 128 + signal.SIGINT
    assert STOP_AT <= signal_at.sent_at < STEPS  # stopped in the middle of the run
    assert load_checkpoint(checkpoint_path(tmp_path / "stopped"))["train_state"]["step"] == signal_at.sent_at
    resumed = api.resume(tmp_path / "stopped")

    losses = train_losses(tmp_path / "straight")
    assert len(losses) == STEPS
    assert train_losses(tmp_path / "stopped") == losses
    assert evals(tmp_path / "stopped") == evals(tmp_path / "straight")
    assert resumed.losses == straight.losses and resumed.best_step == straight.best_step
    assert_same_tensors(load_weights(tmp_path / "stopped" / WEIGHTS), load_weights(tmp_path / "straight" / WEIGHTS))
    last = [load_checkpoint(checkpoint_path(tmp_path / r)) for r in ("stopped", "straight")]
    assert_same_tensors(last[0]["model"], last[1]["model"])
    assert_same_tensors(last[0]["optimizer"]["state"].get(0, {}), last[1]["optimizer"]["state"].get(0, {}))


def cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.mark.slow
def test_cli_resume_to_more_steps_equals_one_longer_run(tmp_path, capsys):
    common = ["--preset", "mlp", "--schedule", "constant", "--eval-interval", "50", "--samples", "0", "--json"]
    assert cli("train", "--steps", STEPS, "--out", tmp_path / "long", *common) == 0
    assert cli("train", "--steps", STEPS // 2, "--out", tmp_path / "short", *common) == 0
    assert cli("train", "--resume", tmp_path / "short", "--steps", STEPS, "--json", "--samples", "0") == 0
    capsys.readouterr()
    assert train_losses(tmp_path / "short") == train_losses(tmp_path / "long")
    assert evals(tmp_path / "short") == evals(tmp_path / "long")
    assert_same_tensors(load_weights(tmp_path / "short" / WEIGHTS), load_weights(tmp_path / "long" / WEIGHTS))
    assert read_run_meta(tmp_path / "short")[2].steps == STEPS  # the new total is saved in config.json


@pytest.mark.parametrize("args, message", [
    (["--steps", "10"], "below the"),
    (["--lr", "0.5"], "only --steps and --threads"),
    (["--data", "x.txt"], "only --steps and --threads"),
])
def test_resume_refuses_what_it_cannot_honour(tmp_path, capsys, args, message):
    run = tmp_path / "run"
    assert cli("train", "--preset", "mlp", "--steps", "60", "--eval-interval", "20", "--out", run,
               "--samples", "0", "--json") == 0
    capsys.readouterr()
    assert cli("train", "--resume", run, *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_resume_without_checkpoint_is_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CharlabError, match="lacks"):
        api.resume(tmp_path / "empty")


def start_training(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "charlab", "train", *args, "--samples", "0", "--json"],
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_new_checkpoint(proc: subprocess.Popen, path: Path, after: float) -> bool:
    """True once ``path`` is (re)written after ``after``; False if the process ends first."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if path.is_file() and path.stat().st_mtime > after:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no checkpoint within {WAIT_S} s")


@pytest.mark.slow
def test_sigterm_then_sigkill_at_random_moments_then_exact_resume(tmp_path, names, write_words):
    """SIGTERM once (graceful: exit 143, checkpoint saved), then SIGKILL at random moments: after
    each, the last checkpoint loads and a resume continues; the final losses equal a straight run."""
    rng = random.Random(0)
    run = tmp_path / "run"
    ckpt = checkpoint_path(run)
    data = write_words(names[:KILL_ITEMS])
    cfg = ["--preset", "mlp", "--steps", str(KILL_STEPS), "--eval-interval", "100", "--data", str(data)]
    proc = start_training([*cfg, "--out", str(run)])
    assert wait_for_new_checkpoint(proc, ckpt, 0.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "--resume" in err and "Traceback" not in err
    steps_seen = [load_checkpoint(ckpt)["train_state"]["step"]]
    killed = 0
    for _ in range(KILLS):
        proc = start_training(["--resume", str(run)])
        if not wait_for_new_checkpoint(proc, ckpt, ckpt.stat().st_mtime):
            break  # finished before the kill
        time.sleep(rng.uniform(*KILL_DELAY_S))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=WAIT_S)
        killed += proc.returncode == -signal.SIGKILL
        sd = load_checkpoint(ckpt)  # loadable whatever the moment of the kill
        read_run_meta(run)
        steps_seen.append(sd["train_state"]["step"])
        assert len(sd["train_state"]["losses"]) == sd["train_state"]["step"]
    api.resume(run, n_samples=0)
    assert killed >= 1 and steps_seen == sorted(steps_seen)
    straight = api.train(data=data, out=tmp_path / "straight", preset="mlp", steps=KILL_STEPS, eval_interval=100,
                         n_samples=0)
    assert train_losses(run) == train_losses(tmp_path / "straight")
    assert evals(run) == evals(tmp_path / "straight")
    assert_same_tensors(load_weights(run / WEIGHTS), load_weights(tmp_path / "straight" / WEIGHTS))
    assert straight.best_step == load_checkpoint(ckpt)["train_state"]["best_step"]
