"""Progress on the terminal: a tqdm bar with the loss and steps/s, and the loss at step 0 printed
next to the loss a uniform prediction would give, -ln(1/vocab_size)."""

from __future__ import annotations

import sys

from tqdm import tqdm

from charlab.models.base import expected_init_loss
from charlab.training.loop import Observer

REFRESH_EVERY = 200  # steps between bar updates: each one reads the loss back (a host sync)


class ProgressBar(Observer):
    def __init__(self, vocab_size: int, enabled: bool = True, stream=sys.stderr):
        self.vocab_size = vocab_size
        self.enabled = enabled
        self.stream = stream
        self.bar = None
        self.step0_loss: float | None = None

    def on_train_start(self, trainer) -> None:
        if self.enabled and trainer.model.trained_by_gradient:
            self.bar = tqdm(total=trainer.cfg.steps, initial=trainer.state.step, file=self.stream,
                            unit="step", dynamic_ncols=True, mininterval=0.5)

    def on_step_end(self, trainer, step: int, loss) -> None:
        if step == 0:
            self.step0_loss = float(loss)
            if self.enabled:
                expected = expected_init_loss(self.vocab_size)
                tqdm.write(f"loss at step 0: {self.step0_loss:.4f}  (expected at init: "
                           f"-ln(1/{self.vocab_size}) = {expected:.4f})", file=self.stream)
        if self.bar is not None and (step + 1) % REFRESH_EVERY == 0:
            self.bar.update(step + 1 - self.bar.n)
            self.bar.set_postfix(loss=f"{float(loss):.4f}", lr=f"{trainer.schedule.lr(step):.3g}",
                                 refresh=False)

    def on_eval(self, trainer, step: int, losses: dict) -> None:
        if self.enabled:
            tqdm.write(f"step {step}: dev loss {losses['dev']:.4f}", file=self.stream)

    def on_train_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.update(trainer.state.step - self.bar.n)
            self.bar.close()
