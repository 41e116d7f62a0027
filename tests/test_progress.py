"""Progress output: a tqdm bar on a terminal; plain lines, at most every PLAIN_EVERY_S seconds, in a
log file or CI (no carriage-return frames); nothing when disabled."""

from __future__ import annotations

import io

import charlab
from charlab.training import progress

STEPS = 600  # three REFRESH_EVERY updates


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def train_into(stream, enabled=True, **kwargs):
    bar = progress.ProgressBar(vocab_size=27, enabled=enabled, stream=stream)
    charlab.train(preset="mlp", steps=STEPS, eval_interval=STEPS, n_samples=0, observers=[bar], **kwargs)
    return stream.getvalue()


def test_not_a_terminal_gets_plain_lines(monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)  # a line at every update
    text = train_into(io.StringIO())
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("loss at step 0: ")
    assert [line.split()[1] for line in lines if line.startswith("step ") and "/" in line] == [
        "200/600", "400/600", "600/600", "600/600"]  # the updates, then the closing line
    assert lines[-1].startswith(f"step {STEPS}/{STEPS} done") and f"step {STEPS}: dev loss" in text


def test_plain_lines_are_rate_limited():
    text = train_into(io.StringIO())  # PLAIN_EVERY_S (seconds) exceeds this short run
    updates = [line for line in text.splitlines() if line.startswith("step ") and "/" in line]
    assert "\r" not in text and len(updates) == 1 and "done" in updates[0]  # only the closing line


def test_a_terminal_gets_the_bar():
    assert "\r" in train_into(Terminal())


def test_disabled_prints_nothing():
    assert train_into(io.StringIO(), enabled=False) == ""
