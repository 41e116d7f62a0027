"""TensorBoard: a sink of the recorder's records, written with ``torch.utils.tensorboard``.

``charlab train --tensorboard`` gives the run's ``Recorder`` this sink and puts the event files in
``RUN/tensorboard``; ``tensorboard --logdir RUN`` shows them. Tags:

=================================  ===========================================================================
``loss/train``                     mean training loss of the last ``scalar_every`` steps
``loss/dev``                       dev loss at each evaluation
``lr``                             learning rate
``update_data/PARAM``              std(update) / std(weight) of each 2-D weight (lecture: ~1e-3)
``saturation/LAYER``               fraction of |tanh| > 0.97 in each bounded layer
``activations/LAYER``              histogram of each layer's output
``gradients/PARAM``                histogram of each parameter's gradient
``weights/PARAM``                  histogram of each parameter after the step
``through_time/CELL``              factor backpropagation applies from a batch's last position to its first
``gate_saturation/GATE``           fraction of a sigmoid gate past 0.03 / 0.97 (``gate_mean/GATE``: its mean)
``attention_entropy/LAYER/H``      head H's attention entropy over that of uniform attention (1 = even)
``attention_logit_std/LAYER/H``    std of head H's attention logits
``residual_std/BLOCK``             std of the residual stream after each block
``figures/...``                    the sequence-model figures (``plots_sequence.py``) of the last sampled step
=================================  ===========================================================================

Everything but the first three comes from the recorder's step records, on the steps its schedule
samples: the two views of a run show the same numbers, and nothing here hooks the model or copies a
weight. A histogram is rebuilt from the recorded summary (count, mean, std, extremes, the bin
densities and the counts outside their range) with ``add_histogram_raw``. The loss and learning
rate come from the loop's per-step losses, read from the device once per ``scalar_every`` steps.
Values are raw (ratios, not log10): TensorBoard draws a log axis on request.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from charlab.diagnostics import sequence_records as sr
from charlab.diagnostics.plots_sequence import FIGURES as SEQUENCE_FIGURES
from charlab.diagnostics.sinks import Sink
from charlab.training.events import TrainView

SCALAR_EVERY = 100  # steps per loss/lr point: smooth curves, and one host read per 100 steps


def raw_histogram(s: dict) -> dict | None:
    """``SummaryWriter.add_histogram_raw``'s arguments from a recorded ``quantities.summary``; None
    without a histogram. A bucket's limit is its right edge; values outside the recorded range go in
    one bucket on each side (ending at the range's start, and at the maximum)."""
    if "hist" not in s or "min" not in s:
        return None
    n, mean, std, lo, hi = s["n"], s["mean"], s["std"], s["hist_lo"], s["hist_hi"]
    width = (hi - lo) / len(s["hist"])
    limits = [lo + width * (i + 1) for i in range(len(s["hist"]))]
    counts = [density * n * width for density in s["hist"]]
    if s.get("hist_below"):
        limits, counts = [lo, *limits], [s["hist_below"], *counts]
    if s.get("hist_above"):
        limits, counts = [*limits, max(s["max"], hi)], [*counts, s["hist_above"]]
    return {"min": s["min"], "max": s["max"], "num": n, "sum": mean * n,
            "sum_squares": std ** 2 * max(n - 1, 0) + n * mean ** 2,  # as the recorded mean and std imply
            "bucket_limits": limits, "bucket_counts": counts}


class TensorBoardSink(Sink):
    every_histogram = True  # TensorBoard shows every layer and parameter

    def __init__(self, logdir: str | Path, scalar_every: int = SCALAR_EVERY):
        self.logdir = Path(logdir)
        self.scalar_every = scalar_every
        self.writer: SummaryWriter | None = None
        self._window_start = 0  # the first step of the running loss/train window
        self._last_step: dict | None = None  # the latest step record: its figures are drawn at the end

    def on_train_start(self, view: TrainView) -> None:
        self.writer = SummaryWriter(log_dir=str(self.logdir))
        self._window_start = view.step

    def write(self, record: dict) -> None:
        if record["kind"] != "step":
            return
        step = record["step"]
        for layer in record["layers"]:
            self._histogram(f"activations/{layer['name']}", layer["out"], step)
            if "saturation" in layer["out"]:
                self.writer.add_scalar(f"saturation/{layer['name']}", layer["out"]["saturation"], step)
        for p in record["params"]:
            if "grad" in p:
                self._histogram(f"gradients/{p['name']}", p["grad"], step)
            if "data_after" in p:
                self._histogram(f"weights/{p['name']}", p["data_after"], step)
            if len(p["shape"]) == 2 and "update_data" in p:
                self.writer.add_scalar(f"update_data/{p['name']}", p["update_data"], step)
        self._sequence_scalars(record, step)
        self._last_step = record

    def _sequence_scalars(self, record: dict, step: int) -> None:
        scalars = {f"through_time/{cell}": factor for cell, factor in sr.through_time(record).items()}
        for name, gate in sr.gates(record).items():
            scalars.update({f"gate_saturation/{name}": gate["low"] + gate["high"], f"gate_mean/{name}": gate["mean"]})
        for layer, entry in sr.attention(record).items():
            for head, value in enumerate(sr.normalised_entropy(entry)):
                scalars[f"attention_entropy/{layer}/{head}"] = value
            for head, value in enumerate(entry.get("logit_std", [])):
                scalars[f"attention_logit_std/{layer}/{head}"] = value
        scalars.update({f"residual_std/{name}": std for name, std in sr.residual(record)})
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def _histogram(self, tag: str, s: dict, step: int) -> None:
        raw = raw_histogram(s)
        if raw is not None:
            self.writer.add_histogram_raw(tag, global_step=step, **raw)

    def on_step_end(self, view: TrainView, step: int, loss) -> None:
        if view.crossed(self.scalar_every) or step + 1 == view.cfg.steps:
            window = view.losses(self._window_start, step + 1)  # (k,) on the device: one read per window
            self.writer.add_scalar("loss/train", float(window.mean()), step)
            self.writer.add_scalar("lr", view.lr(step), step)
            self._window_start = step + 1

    def on_eval(self, view: TrainView, step: int, losses: dict[str, float]) -> None:
        for split, value in losses.items():
            self.writer.add_scalar(f"loss/{split}", value, step)

    def on_train_end(self, view: TrainView) -> None:
        if self.writer is None:
            return
        if self._last_step is not None:
            for name, draw in SEQUENCE_FIGURES.items():
                try:
                    self.writer.add_figure(f"figures/{name}", draw([self._last_step]), self._last_step["step"])
                except ValueError:  # not a model with these taps
                    continue
        self.writer.close()
