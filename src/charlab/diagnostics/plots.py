"""The lecture's figures, drawn from saved records alone (no model needed), as matplotlib Figures
(those of sequence models in ``plots_sequence.py``; ``draw_all`` draws both).

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state), so they render under Agg, in a
notebook (a returned Figure displays itself) and in scripts. ``save_figure`` writes PNG and SVG.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from charlab.diagnostics.health import Records
from charlab.diagnostics.plots_sequence import FIGURES as SEQUENCE_FIGURES
from charlab.diagnostics.quantities import bin_centres

FIGSIZE = (10, 4)  # the lecture's wide distribution plots
UPDATE_GUIDE = -3.0  # log10(update:data) the lecture draws as the guide line
LOSS_WINDOWS = 200  # the loss curve is averaged over this many windows (the lecture: 200 x 1000 steps)
FORMATS = ("png", "svg")


def _step_record(records: list[dict], step: int | None) -> dict:
    steps = Records(records).steps
    if not steps:
        raise ValueError("no step records to draw (record with diagnostics first)")
    if step is None:
        return steps[-1]
    return min(steps, key=lambda r: abs(r["step"] - step))


def _hist_line(ax, summary: dict, label: str) -> None:
    ax.plot(bin_centres(summary["hist_lo"], summary["hist_hi"], len(summary["hist"])), summary["hist"], label=label)


def _layer_distribution(records: list[dict], step: int | None, key: str, title: str) -> Figure:
    view, record = Records(records), _step_record(records, step)
    names = set(view.bounded()) or {e["name"] for e in record["layers"][:-1]}
    fig = Figure(figsize=FIGSIZE)
    ax = fig.subplots()
    for entry in record["layers"]:
        if entry["name"] not in names or key not in entry:
            continue
        s = entry[key]
        label = f"{entry['name']} ({view.info.get(entry['name'], {}).get('type', '?')}): mean {s['mean']:+.2g}, " \
                f"std {s['std']:.3g}"
        if "saturation" in s:
            label += f", saturated {100 * s['saturation']:.1f}%"
        _hist_line(ax, s, label)
    ax.set_title(f"{title} (step {record['step']})")
    if ax.lines:
        ax.legend(fontsize="small")
    return fig


def plot_activations(records: list[dict], step: int | None = None) -> Figure:
    """Distribution of each bounded layer's output (all hidden layers if none is bounded)."""
    return _layer_distribution(records, step, "out", "activation distribution")


def plot_gradients(records: list[dict], step: int | None = None) -> Figure:
    """Distribution of the gradient of the loss with respect to each layer's output."""
    return _layer_distribution(records, step, "grad", "gradient distribution")


def plot_weight_gradients(records: list[dict], step: int | None = None) -> Figure:
    """Distribution of each weight matrix's gradient, grad:data in the legend."""
    view, record = Records(records), _step_record(records, step)
    names = set(view.weights_2d())
    fig = Figure(figsize=FIGSIZE)
    ax = fig.subplots()
    for p in record["params"]:
        if p["name"] in names and "grad" in p:
            _hist_line(ax, p["grad"], f"{p['name']} {tuple(p['shape'])}: std {p['grad']['std']:.2e}, "
                                      f"grad:data {p['grad_data']:.2e}")
    ax.set_title(f"weight gradient distribution (step {record['step']})")
    if ax.lines:
        ax.legend(fontsize="small")
    return fig


def plot_update_ratio(records: list[dict]) -> Figure:
    """log10(update:data) of each weight matrix over the sampled steps, with the 1e-3 guide."""
    view = Records(records)
    fig = Figure(figsize=FIGSIZE)
    ax = fig.subplots()
    for name in view.weights_2d():
        points = [(s["step"], math.log10(p["update_data"])) for s in view.steps for p in s["params"]
                  if p["name"] == name and p.get("update_data", 0) > 0]
        if points:
            ax.plot(*zip(*points), label=name)
    ax.axhline(UPDATE_GUIDE, color="k", linestyle="--", label="1e-3 guide")
    ax.set_xlabel("step")
    ax.set_ylabel("log10(update std / data std)")
    ax.set_title("update:data ratio")
    if ax.lines:
        ax.legend(fontsize="small")
    return fig


def plot_loss(losses: list[float], windows: int = LOSS_WINDOWS) -> Figure:
    """log10 of the training loss, averaged over up to ``windows`` equal windows of steps."""
    size = max(1, len(losses) // windows)
    n = len(losses) // size
    means = [sum(losses[i * size:(i + 1) * size]) / size for i in range(n)]
    fig = Figure(figsize=FIGSIZE)
    ax = fig.subplots()
    ax.plot([i * size for i in range(n)], [math.log10(m) for m in means])
    ax.set_xlabel("step")
    ax.set_ylabel(f"log10(loss), mean of {size} steps")
    ax.set_title("training loss")
    return fig


def plot_saturation_map(records: list[dict], layer: str | None = None) -> Figure:
    """The lecture's map: white where |h| > 0.99, one batch of examples by units, from the probe record."""
    probe = Records(records).probe
    if probe is None or not probe["bounded"]:
        raise ValueError("no probe record with a bounded layer to draw (run the full-pass probe first)")
    entry = next((b for b in probe["bounded"] if b["name"] == layer), probe["bounded"][0])
    image = [[int(c) for c in row] for row in entry["saturation_map"]]  # (examples, units)
    fig = Figure(figsize=(10, max(2, 10 * len(image) / max(len(image[0]), 1))))
    ax = fig.subplots()
    ax.imshow(image, cmap="gray", interpolation="nearest", vmin=0, vmax=1, aspect="auto")
    ax.set_xlabel("unit")
    ax.set_ylabel("example")
    ax.set_title(f"{entry['name']}: |h| > 0.99 (white); {entry['dead']} dead of {entry['units']} units")
    return fig


def save_figure(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg``; returns the paths."""
    paths = [Path(f"{stem}.{fmt}") for fmt in FORMATS]
    for path in paths:
        fig.savefig(path, bbox_inches="tight")
    return paths


def draw_all(records: list[dict], losses: list[float], folder: str | Path) -> list[Path]:
    """Every figure that the records allow, saved under ``folder``; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    view = Records(records)
    figures = {}
    if view.steps:
        figures.update(activations=plot_activations(records), gradients=plot_gradients(records),
                       weight_gradients=plot_weight_gradients(records), update_ratio=plot_update_ratio(records))
    if losses:
        figures["loss"] = plot_loss(losses)
    if view.probe is not None and view.probe["bounded"]:
        figures["saturation_map"] = plot_saturation_map(records)
    for name, draw in SEQUENCE_FIGURES.items():
        try:
            figures[name] = draw(records)
        except ValueError:  # not a model with these taps
            continue
    return [path for name, fig in figures.items() for path in save_figure(fig, folder / name)]
