"""Progress while training: the loss at step 0 printed next to the loss a uniform prediction would
give, -ln(1/vocab_size), each dev loss, and the steps so far.

On a terminal the steps are a tqdm bar with the loss and steps/s. Anywhere else (stderr redirected
to a log file, CI) a bar would be thousands of carriage-return frames, so a plain line is printed
instead, at most every ``PLAIN_EVERY_S`` seconds. ``enabled=False`` (``--json``, ``progress=False``)
prints nothing.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from charlab.models.base import expected_init_loss
from charlab.training.events import Observer, TrainView

REFRESH_EVERY = 200  # steps between updates: each one reads the loss back (a host sync)
PLAIN_EVERY_S = 10.0  # seconds between plain progress lines: a readable log, a few hundred lines an hour


def is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ProgressBar(Observer):
    def __init__(self, vocab_size: int, enabled: bool = True, stream=None):
        self.vocab_size = vocab_size
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.bar = None
        self.plain = False  # plain lines instead of the bar (not a terminal)
        self.step0_loss: float | None = None
        self.started = self.last_line = 0.0  # time.monotonic() of the start and of the last plain line
        self.start_step = 0

    def on_train_start(self, view: TrainView) -> None:
        if not (self.enabled and view.model.trained_by_gradient):
            return
        self.started = self.last_line = time.monotonic()
        self.start_step = view.step
        if is_terminal(self.stream):
            self.bar = tqdm(total=view.cfg.steps, initial=view.step, file=self.stream,
                            unit="step", dynamic_ncols=True, mininterval=0.5)
        else:
            self.plain = True

    def write(self, line: str) -> None:
        tqdm.write(line, file=self.stream)  # above the bar when there is one

    def on_step_end(self, view: TrainView, step: int, loss) -> None:
        if view.chunk_start == 0:
            self.step0_loss = float(view.losses(0, 1)[0])
            if self.enabled:
                expected = expected_init_loss(self.vocab_size)
                self.write(f"loss at step 0: {self.step0_loss:.4f}  (expected at init: "
                           f"-ln(1/{self.vocab_size}) = {expected:.4f})")
        if not view.crossed(REFRESH_EVERY):
            return
        if self.bar is not None:
            self.bar.update(view.step - self.bar.n)
            self.bar.set_postfix(loss=f"{float(loss):.4f}", lr=f"{view.lr(step):.3g}", refresh=False)
        elif self.plain and time.monotonic() - self.last_line >= PLAIN_EVERY_S:
            self.last_line = time.monotonic()
            self.write(f"step {view.step}/{view.cfg.steps}  loss {float(loss):.4f}  lr {view.lr(step):.3g}  "
                       f"{self.rate(view.step):.0f} steps/s")

    def rate(self, done: int) -> float:
        return (done - self.start_step) / max(time.monotonic() - self.started, 1e-9)

    def on_eval(self, view: TrainView, step: int, losses: dict) -> None:
        if self.enabled:
            self.write(f"step {step}: dev loss {losses['dev']:.4f}")

    def on_train_end(self, view: TrainView) -> None:
        if self.bar is not None:
            self.bar.update(view.step - self.bar.n)
            self.bar.close()
        elif self.plain:
            self.write(f"step {view.step}/{view.cfg.steps} done, {self.rate(view.step):.0f} steps/s")
