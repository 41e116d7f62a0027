"""TensorBoard: an ``Observer`` that writes what training shows to ``torch.utils.tensorboard``.

``charlab train --tensorboard`` puts the event files in ``RUN/tensorboard``; ``tensorboard --logdir RUN``
shows them. Tags:

=============================  ==================================================================
``loss/train``                 mean training loss of the last ``scalar_every`` steps
``loss/dev``                   dev loss at each evaluation
``lr``                         learning rate
``update_data/PARAM``          std(update) / std(weight) of each 2-D weight (lecture: ~1e-3)
``saturation/LAYER``           fraction of |tanh| > 0.97 in each bounded layer
``activations/LAYER``          histogram of each layer's output
``gradients/PARAM``            histogram of each parameter's gradient
``weights/PARAM``              histogram of each parameter after the step
=============================  ==================================================================

Values are raw (ratios, not log10): TensorBoard draws a log axis on request. The statistics come
from ``diagnostics.quantities`` and histograms are written on the steps the diagnostics schedule
samples, so the two views of a run agree. Hooks live only for the forward pass of a sampled step.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from charlab.diagnostics import quantities as q
from charlab.diagnostics.recorder import first_tensor, leaf_layers
from charlab.diagnostics.sampling import DEFAULT_SCHEDULE, SampleSchedule
from charlab.training.events import Observer, TrainView

SCALAR_EVERY = 100  # steps per loss/lr point: smooth curves, and one host read per 100 steps


class TensorBoardObserver(Observer):
    def __init__(self, logdir: str | Path, scalar_every: int = SCALAR_EVERY,
                 schedule: SampleSchedule = DEFAULT_SCHEDULE):
        self.logdir = Path(logdir)
        self.scalar_every = scalar_every
        self.schedule = schedule
        self.writer: SummaryWriter | None = None
        self._loss_sum: torch.Tensor | float = 0.0
        self._loss_count = 0
        self._handles: list = []
        self._outputs: dict[str, torch.Tensor] = {}
        self._before: dict[str, torch.Tensor] = {}

    def on_train_start(self, view: TrainView) -> None:
        self.writer = SummaryWriter(log_dir=str(self.logdir))
        model = view.model
        self.layers = leaf_layers(model)
        self.params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.total = view.cfg.steps

    def on_step_start(self, view: TrainView, step: int) -> None:
        if self.schedule.sampled(step, self.total):
            for name, module in self.layers:
                self._handles.append(module.register_forward_hook(self._keep_output(name)))

    def _keep_output(self, name: str):
        def hook(module, inputs, output):
            out = first_tensor(output)
            if out is not None:
                self._outputs[name] = out.detach()
        return hook

    def on_after_backward(self, view: TrainView, step: int) -> None:
        if not self._handles:
            return
        self._remove_hooks()
        for name, p in self.params:
            if p.grad is not None:
                self.writer.add_histogram(f"gradients/{name}", p.grad.detach().cpu(), step, bins=q.HIST_BINS)
            if p.dim() == 2:
                self._before[name] = p.detach().clone()

    def on_step_end(self, view: TrainView, step: int, loss: torch.Tensor) -> None:
        self._loss_sum = self._loss_sum + loss  # stays on the device until written
        self._loss_count += 1
        if (step + 1) % self.scalar_every == 0 or step + 1 == self.total:
            self.writer.add_scalar("loss/train", float(self._loss_sum) / self._loss_count, step)
            self.writer.add_scalar("lr", view.lr(step), step)
            self._loss_sum, self._loss_count = 0.0, 0
        if self._outputs or self._before:
            self._write_sampled(step)

    def _write_sampled(self, step: int) -> None:
        bounded = {name for name, m in self.layers if getattr(m, "bounded", False)}
        for name, out in self._outputs.items():
            self.writer.add_histogram(f"activations/{name}", out.cpu(), step, bins=q.HIST_BINS)
            if name in bounded:
                self.writer.add_scalar(f"saturation/{name}", float(q.saturation_fraction(out)), step)
        for name, p in self.params:
            self.writer.add_histogram(f"weights/{name}", p.detach().cpu(), step, bins=q.HIST_BINS)
            if name in self._before:
                self.writer.add_scalar(f"update_data/{name}", float(q.update_data_ratio(self._before[name], p)),
                                       step)
        self._outputs, self._before = {}, {}

    def on_eval(self, view: TrainView, step: int, losses: dict[str, float]) -> None:
        for split, value in losses.items():
            self.writer.add_scalar(f"loss/{split}", value, step)

    def on_train_end(self, view: TrainView) -> None:
        self._remove_hooks()
        if self.writer is not None:
            self.writer.close()

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
