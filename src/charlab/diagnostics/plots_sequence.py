"""The figures of sequence models, drawn from saved records alone (like ``plots.py``).

- ``plot_gradient_through_time``: ``||dL/ds_t||`` over the positions t, log y, one line per sampled step;
- ``plot_gate_saturation``: each gate's saturated fraction over training (and the cell's tanh), the
  forget gate's mean dashed;
- ``plot_attention_entropy``: heat maps, layers x heads, of attention entropy over that of uniform
  attention and of each head's gradient norm, at the latest sampled step;
- ``plot_residual_std``: the residual stream's std after each block, early and late in training.

Each raises ``ValueError`` when the records hold nothing it draws (a window model's), so callers skip it.
"""

from __future__ import annotations

import math

from matplotlib import colormaps
from matplotlib.figure import Figure

from charlab.diagnostics import sequence_records as sr
from charlab.diagnostics.health_sequence import FORGET
from charlab.diagnostics.verdict import Records

FIGSIZE = (10, 4)  # the wide format of the lecture's figures (plots.py)
MAX_LINES = 12  # sampled steps drawn in the through-time figure: more lines than this are unreadable
STEP_COLOURS = "viridis"  # early steps dark, late steps light
RESIDUAL_STEPS = 3  # first, middle and last sampled step in the residual figure


def _steps_with(records: list[dict], read) -> list[dict]:
    steps = [s for s in Records(records).steps if read(s)]
    if not steps:
        raise ValueError("no step records with sequence-model taps to draw (record a sequence model first)")
    return steps


def _spread(steps: list[dict], count: int) -> list[dict]:
    """At most ``count`` records evenly over ``steps``, the first and the last included."""
    if len(steps) <= count:
        return steps
    return [steps[round(i * (len(steps) - 1) / (count - 1))] for i in range(count)]


def plot_gradient_through_time(records: list[dict]) -> Figure:
    steps = _spread(_steps_with(records, sr.state_gradients), MAX_LINES)
    cells = list(sr.state_gradients(steps[-1]))
    fig = Figure(figsize=(FIGSIZE[0], FIGSIZE[1] * len(cells)))
    colours = colormaps[STEP_COLOURS]
    for ax, cell in zip(fig.subplots(len(cells), squeeze=False)[:, 0], cells):
        for i, record in enumerate(steps):
            received, _ = sr.state_gradients(record).get(cell, ([], []))
            points = [(t, g) for t, g in enumerate(received) if g > 0]
            if points:
                factor = sr.through_time(record).get(cell)
                label = f"step {record['step']}" + (f": last->first x{factor:.1e}" if factor is not None else "")
                ax.plot(*zip(*points), "o-", color=colours(i / max(len(steps) - 1, 1)), label=label, markersize=3)
        ax.set_yscale("log")
        ax.set_xlabel("position t")
        ax.set_ylabel("||dL/ds_t||")
        ax.set_title(f"{cell or 'cell'}: gradient of the loss w.r.t. the state at each position")
        ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    return fig


def plot_gate_saturation(records: list[dict]) -> Figure:
    steps = _steps_with(records, sr.gates)
    view = Records(records)
    fig = Figure(figsize=FIGSIZE)
    ax = fig.subplots()
    x = [s["step"] for s in steps]
    for name in sr.gates(steps[-1]):
        ax.plot(x, [sr.gates(s)[name]["low"] + sr.gates(s)[name]["high"] for s in steps], label=f"{name} saturated")
        if name.rsplit(".", 1)[-1] == FORGET:
            ax.plot(x, [sr.gates(s)[name]["mean"] for s in steps], "k--", label=f"{name} mean")
    for name in view.cell_layers():
        values = [next((e["out"].get("saturation") for e in s["layers"] if e["name"] == name), None) for s in steps]
        ax.plot([a for a, v in zip(x, values) if v is not None], [v for v in values if v is not None], ":",
                label=f"{name} (tanh) saturated")
    ax.set_xlabel("step")
    ax.set_ylabel("fraction")
    ax.set_ylim(0, 1)
    ax.set_title("gates: fraction saturated (sigmoid < 0.03 or > 0.97; tanh |t| > 0.97)")
    ax.legend(fontsize="small")
    return fig


def _heat_map(fig: Figure, ax, values: list[list[float]], layers: list[str], title: str, fmt: str, **imshow):
    image = ax.imshow(values, aspect="auto", **imshow)
    ax.set_xticks(range(len(values[0])), [f"head {h}" for h in range(len(values[0]))])
    ax.set_yticks(range(len(layers)), layers)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize="small", color="w")
    ax.set_title(title)
    fig.colorbar(image, ax=ax)


def plot_attention_entropy(records: list[dict]) -> Figure:
    record = _steps_with(records, sr.attention)[-1]
    layers = sr.attention(record)
    names = list(layers)
    fig = Figure(figsize=(FIGSIZE[0], max(FIGSIZE[1], 0.8 * len(names) + 1.5)))
    left, right = fig.subplots(1, 2)
    _heat_map(fig, left, [sr.normalised_entropy(layers[n]) for n in names], names,
              f"entropy / uniform (step {record['step']}; 1 = even, 0 = one position)", ".2f", vmin=0, vmax=1)
    grads = [layers[n].get("head_grad") for n in names]
    if all(grads):
        _heat_map(fig, right, [[math.log10(max(g, 1e-30)) for g in row] for row in grads], names,
                  "log10 ||dL/d head output||", ".1f")
    else:
        right.set_axis_off()
    fig.tight_layout()
    return fig


def plot_residual_std(records: list[dict]) -> Figure:
    steps = _spread(_steps_with(records, sr.residual), RESIDUAL_STEPS)
    fig = Figure(figsize=FIGSIZE)
    ax = fig.subplots()
    for record in steps:
        names, stds = zip(*sr.residual(record))
        ax.plot(range(len(stds)), stds, "o-", label=f"step {record['step']}")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("std of the residual stream")
    ax.set_title("residual stream after each block")
    ax.legend(fontsize="small")
    return fig


FIGURES = {"gradient_through_time": plot_gradient_through_time, "gate_saturation": plot_gate_saturation,
           "attention_entropy": plot_attention_entropy, "residual_std": plot_residual_std}
