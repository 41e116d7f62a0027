"""Memory: which recurrent cell keeps the gradient alive through time, on the data.

The plain tanh RNN, the GRU and the LSTM train at the same width (embedding and state), with the same
steps, seed, batches and optimizer (each cell's preset: AdamW, warmup + cosine, clipping). The
diagnostics recorder measures on sampled steps what backpropagation through time does to the gradient:
``||dL/ds_t||`` at every position, and the factor that carries a gradient from a batch's last position
back to its first (``diagnostics/quantities_sequence.py``: the product over the steps of what each one
sends back over what it received). The table sets the losses beside those measurements, and the
findings name the cell that keeps the gradient alive, from the numbers.
"""

from __future__ import annotations

import math
import statistics

import matplotlib.pyplot as plt

from charlab.config import DEFAULT_SEED
from charlab.diagnostics import quantities_sequence as qs
from charlab.diagnostics import sequence_records as sr
from charlab.diagnostics.health_sequence import FORGET
from charlab.diagnostics.recorder import Recorder
from charlab.diagnostics.sampling import SampleSchedule
from charlab.experiments.runner import Column, ExperimentResult, data_name, train_variant
from charlab.training.events import Observer, TrainView

NAME = "memory"
DEFAULT_STEPS = 2000  # a few seconds per cell on one thread; the ranking of the cells is settled by then
CELLS = ("rnn", "gru", "lstm")
N_EMBD, N_HIDDEN = 64, 128  # the presets' own widths, pinned so that every cell has the same
RECORDS = 20  # sampled steps spread over training (plus the first and the last)
END_RECORDS = 5  # "at the end": the mean (of log10) over the last quarter of the sampled steps
SMOOTH = 50  # steps per point of the loss curves
CELL = "cell"  # the recurrent models' cell module (models/rnn.py)


class LossCurve(Observer):
    """Every step's training loss, read once at the end of training."""

    def on_train_end(self, view: TrainView) -> None:
        self.losses = view.losses_so_far()


def _mean_log(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return 10 ** statistics.mean(math.log10(max(v, qs.TINY)) for v in values) if values else None


def per_step(record: dict) -> float:
    """The geometric mean of what each step back keeps of the state gradient (``quantities_sequence``)."""
    factors = qs.transmission(*sr.state_gradients(record)[CELL])
    return math.exp(statistics.mean(math.log(max(f, qs.TINY)) for f in factors))


def forget_mean(records: list[dict]) -> float | None:
    """The forget gate's mean activation over ``records`` (None for a cell without one)."""
    means = [g["mean"] for r in records for name, g in sr.gates(r).items() if name.rsplit(".", 1)[-1] == FORGET]
    return statistics.mean(means) if means else None


def run_cell(cell: str, steps: int, seed: int, progress: bool, data) -> tuple[dict, dict]:
    """(the table's row, the curves for the figures) of one cell."""
    recorder, curve = Recorder(SampleSchedule(every=max(steps // RECORDS, 1), dense=1)), LossCurve()
    trained = train_variant(cell, steps, seed, recorder, observers=[curve], progress=progress, data=data,
                            n_embd=N_EMBD, n_hidden=N_HIDDEN)
    records = recorder.steps()
    end = records[-END_RECORDS:]
    received = sr.state_gradients(records[-1])[CELL][0]
    row = {"cell": cell, "params": sum(p.numel() for p in trained.model.parameters()),
           "train": trained.losses["train"], "dev": trained.losses["dev"],
           "through_time_init": sr.through_time(records[0])[CELL],
           "through_time_end": _mean_log([sr.through_time(r)[CELL] for r in end]),
           "per_step_init": per_step(records[0]), "per_step_end": statistics.mean(map(per_step, end)),
           "first_last_end": qs.first_last(received), "forget_mean_init": forget_mean(records[:1]),
           "forget_mean_end": forget_mean(end), "wall_time_s": trained.wall_time_s}
    return row, {"losses": curve.losses, "per_step": [(r["step"], per_step(r)) for r in records],
                 "received": received}


def findings(rows: list[dict], steps: int) -> list[str]:
    by_end = sorted(rows, key=lambda r: r["through_time_end"], reverse=True)
    by_dev = sorted(rows, key=lambda r: r["dev"])
    best, worst = by_end[0], by_end[-1]
    lines = [
        f"dev loss after {steps} steps: " + ", ".join(f"{r['cell']} {r['dev']:.4f}" for r in rows)
        + f"; lowest: {by_dev[0]['cell']}.",
        "gradient through time at the end of training (a batch's last position back to its first): "
        + ", ".join(f"{r['cell']} x{r['through_time_end']:.1e} (each step back keeps {r['per_step_end']:.2f})"
                    for r in rows)
        + f". {best['cell']} keeps the gradient alive through time best, {worst['cell']} least "
        f"({best['through_time_end'] / worst['through_time_end']:.0f}x apart).",
        "at initialisation: " + ", ".join(f"{r['cell']} x{r['through_time_init']:.1e}" for r in rows) + ".",
    ]
    gated = next((r for r in rows if r["forget_mean_end"] is not None), None)
    if gated is not None:
        lines.append(f"the {gated['cell']}'s forget gate has mean {gated['forget_mean_init']:.2f} at initialisation "
                     f"(bias ~0: sigmoid(0) = 0.5), so each step keeps about that share of its memory; at the end "
                     f"{gated['forget_mean_end']:.2f}.")
    lines.append(f"the cell that carries the gradient furthest is {'also' if best is by_dev[0] else 'not'} the one "
                 f"with the lowest dev loss{'' if best is by_dev[0] else ' (' + by_dev[0]['cell'] + ')'}.")
    lines.append("‖dL/ds_t‖ first/last at the last step: " + ", ".join(
        f"{r['cell']} {r['first_last_end']:.1f}" for r in rows if r["first_last_end"] is not None)
        + ": this ratio also counts how many items still predict at each position and each position's own "
        "loss, which is why the through-time factor above measures what the steps pass back instead.")
    return lines


def loss_figure(curves: dict[str, dict]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(8, 4))
    for cell, c in curves.items():
        points = [statistics.mean(c["losses"][i:i + SMOOTH]) for i in range(0, len(c["losses"]), SMOOTH)]
        ax.plot([i * SMOOTH for i in range(len(points))], points, label=cell)
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss (mean of {SMOOTH} steps)")
    ax.set_title("loss")
    ax.legend()
    return fig


def gradient_figure(curves: dict[str, dict]) -> plt.Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4))
    for cell, c in curves.items():
        left.plot(*zip(*c["per_step"]), "o-", label=cell, markersize=3)
        right.plot(range(len(c["received"])), c["received"], "o-", label=cell, markersize=3)
    left.set(xlabel="step", ylabel="share of the state gradient kept", title="each step back through time keeps")
    right.set(yscale="log", xlabel="position t", ylabel="||dL/ds_t||", title="state gradient, last sampled step")
    left.legend()
    right.legend()
    fig.tight_layout()
    return fig


def run(steps: int | None = None, seed: int = DEFAULT_SEED, progress: bool = False, data=None) -> ExperimentResult:
    steps = DEFAULT_STEPS if steps is None else steps
    measured = {cell: run_cell(cell, steps, seed, progress, data) for cell in CELLS}
    rows = [row for row, _ in measured.values()]
    curves = {cell: c for cell, (_, c) in measured.items()}
    columns = [Column("cell", "cell"), Column("params", "parameters"), Column("train", "train loss", "{:.4f}"),
               Column("dev", "dev loss", "{:.4f}"),
               Column("through_time_init", "gradient last->first at init", "{:.1e}"),
               Column("through_time_end", "gradient last->first at the end", "{:.1e}"),
               Column("per_step_init", "kept per step back at init", "{:.2f}"),
               Column("per_step_end", "kept per step back at the end", "{:.2f}"),
               Column("first_last_end", "‖dL/ds_0‖ / ‖dL/ds_T-1‖", "{:.1f}"),
               Column("forget_mean_init", "forget gate mean at init", "{:.2f}"),
               Column("forget_mean_end", "forget gate mean at the end", "{:.2f}"),
               Column("wall_time_s", "wall time (s)", "{:.1f}")]
    settings = {"steps": steps, "seed": seed, "n_embd": N_EMBD, "n_hidden": N_HIDDEN, "data": data_name(data)}
    return ExperimentResult(NAME, "Memory: the gradient through time of rnn, gru and lstm", settings, columns, rows,
                            findings(rows, steps), data={c: {"per_step": v["per_step"], "received": v["received"]}
                                                         for c, v in curves.items()},
                            figures={"loss": lambda: loss_figure(curves), "gradient": lambda: gradient_figure(curves)})
