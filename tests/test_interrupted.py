"""A run killed mid-training stays usable: `sample`, `eval`, `score`, `diagnose`, `fold` and `report`
on a run directory without model.safetensors use the best-dev weights of its checkpoints, say which
checkpoint and step on stderr (one line), and carry it in --json as "weights"; a run without any
checkpoint keeps its one-line error."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from charlab.cli.main import main
from charlab.rundir import BEST_CHECKPOINT, CHECKPOINT_DIR, LAST_CHECKPOINT, WEIGHTS, load_run, read_metrics

from conftest import CLI_TIMEOUT_S, cli_env

WAIT_S = 120  # for the first checkpoint of a subprocess on a busy machine
BEST = f"{CHECKPOINT_DIR}/{BEST_CHECKPOINT}"
LAST = f"{CHECKPOINT_DIR}/{LAST_CHECKPOINT}"


def train(out, *flags) -> None:
    assert main(["train", "--preset", "mlp", "--n-hidden", "16", "--out", str(out), "--samples", "0", "--json",
                 *flags]) == 0


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 40-step run with evaluations at 20 and 40 (both checkpoints written)."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    train(out, "--steps", "40", "--eval-interval", "20")
    return out


def without_final_weights(run, tmp_path):
    copy = tmp_path / "cut"
    shutil.copytree(run, copy)
    (copy / WEIGHTS).unlink()
    return copy


def test_best_checkpoint_stands_in_for_the_final_weights(finished, tmp_path, capsys):
    run = without_final_weights(finished, tmp_path)
    loaded = load_run(run)
    (final,) = [r for r in read_metrics(finished) if r["event"] == "final"]
    assert loaded.weights == {"source": BEST, "step": final["best_step"]}
    for name, value in load_run(finished).model.state_dict().items():  # best at the end = the saved weights
        assert bool((loaded.model.state_dict()[name] == value).all()), name
    assert main(["eval", str(run), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["weights"] == loaded.weights
    assert captured.err.count("\n") == 1 and BEST in captured.err and f"step {loaded.weights['step']}" in captured.err


def test_last_checkpoint_without_evaluation_gives_its_step_weights(tmp_path, capsys):
    run = tmp_path / "run"
    train(run, "--steps", "30", "--eval-interval", "1000", "--checkpoint-interval", "10")
    (run / WEIGHTS).unlink()
    (run / CHECKPOINT_DIR / BEST_CHECKPOINT).unlink(missing_ok=True)
    capsys.readouterr()
    assert main(["score", str(run), "emma", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["weights"] == {"source": LAST, "step": 30}
    assert LAST in captured.err and "step 30" in captured.err


def test_finished_run_json_has_no_weights_key(finished, capsys):
    assert main(["eval", str(finished), "--json"]) == 0
    captured = capsys.readouterr()
    assert "weights" not in json.loads(captured.out) and captured.err == ""


@pytest.mark.slow  # a subprocess killed with SIGKILL once its first checkpoint exists
def test_kill_9_mid_training_then_sample_eval_score_name_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "charlab", "train", "--preset", "mlp", "--steps", "10000000",
                             "--eval-interval", "50", "--out", str(run), "--samples", "0", "--json"],
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT_S
    try:
        while not (run / CHECKPOINT_DIR / BEST_CHECKPOINT).is_file():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, f"no checkpoint within {WAIT_S} s"
            time.sleep(0.05)
        time.sleep(0.3)  # kill it somewhere in the middle, maybe mid-write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=WAIT_S)
    assert proc.returncode == -signal.SIGKILL
    assert not (run / WEIGHTS).exists()

    def charlab(*args):
        done = subprocess.run([sys.executable, "-m", "charlab", *args], env=cli_env(), capture_output=True,
                              text=True, timeout=CLI_TIMEOUT_S)
        assert done.returncode == 0, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and BEST in done.stderr and "step " in done.stderr
        return done

    assert len(charlab("sample", str(run), "-n", "5").stdout.splitlines()) == 5
    losses = json.loads(charlab("eval", str(run), "--json").stdout)
    assert set(losses) == {"train", "dev", "test", "weights"} and losses["weights"]["source"] == BEST
    assert losses["weights"]["step"] % 50 == 0 and losses["weights"]["step"] > 0
    (row,) = json.loads(charlab("score", str(run), "emma", "--json").stdout)
    assert row["nll_per_char"] > 0 and row["weights"] == losses["weights"]
