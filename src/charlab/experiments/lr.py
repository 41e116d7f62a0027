"""Learning-rate check by update:data: how much one optimizer step changes each weight matrix,
relative to the matrix (std of the update / std of the data). The lecture's rule of thumb: about
1e-3 (log10 = -3); much larger and the weights thrash, much smaller and they barely learn.

The deep net trains at each learning rate with a constant schedule (same data, seed, batches and
steps); update:data of every weight matrix is recorded along the way, and the settled value is its
median over the second half of training. The recommended rate is the one whose median settled ratio
over the matrices (the output layer starts as an outlier, scaled x0.01) sits nearest 1e-3 in log10.
"""

from __future__ import annotations

import math
import statistics

import matplotlib.pyplot as plt

from charlab.config import DEFAULT_SEED
from charlab.diagnostics.recorder import Recorder
from charlab.diagnostics.sampling import SampleSchedule
from charlab.experiments.runner import Column, ExperimentResult, data_name, train_variant
from charlab.training.stopping import TrainingStopped

NAME = "lr"
PRESET = "deep-bn"  # the lecture looked at update:data on its deep BatchNorm net
DEFAULT_STEPS = 1000
LEARNING_RATES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # half-decades around the lecture's 0.1
TARGET_UPDATE_DATA = 1e-3  # the lecture's rule of thumb
RECORDS_PER_RUN = 20  # sampled steps per run: enough for a median and the over-time plot
SETTLED_FROM = 0.5  # fraction of training after which the ratios count as settled


def log10_or_nan(x: float | None) -> float:
    return math.log10(x) if x is not None and math.isfinite(x) and x > 0 else math.nan


def matrix_names(step_record: dict) -> list[str]:
    """The weight matrices (2-D parameters: embedding and Linear weights), as the lecture plots."""
    return [p["name"] for p in step_record["params"] if len(p["shape"]) == 2]


def run_rate(lr: float, steps: int, seed: int, progress: bool, data) -> dict:
    """Settled update:data per weight matrix at one rate; a rate whose loss turns non-finite is marked
    diverged (its ratios are not settled values) and is never recommended."""
    recorder = Recorder(SampleSchedule(every=max(steps // RECORDS_PER_RUN, 1), dense=0), probe=False)
    try:
        dev, diverged = train_variant(PRESET, steps, seed, recorder, progress=progress, data=data, lr=lr,
                                      schedule="constant").losses["dev"], None
    except TrainingStopped as stop:
        dev, diverged = None, str(stop).split(";")[0]
    records = recorder.steps()
    names = matrix_names(records[0])
    series = {n: [(r["step"], next(p["update_data"] for p in r["params"] if p["name"] == n)) for r in records]
              for n in names}
    settled = {n: statistics.median([v for s, v in pts if s >= SETTLED_FROM * steps] or [pts[-1][1]])
               for n, pts in series.items()}
    logs = [math.nan if diverged else log10_or_nan(v) for v in settled.values()]
    return {"lr": lr, "log10_update_data": logs, "median_log10": statistics.median(logs), "dev": dev,
            "diverged": diverged, "params": names, "series": series}


def recommend(rows: list[dict]) -> dict:
    target = math.log10(TARGET_UPDATE_DATA)
    finite = [r for r in rows if math.isfinite(r["median_log10"])]
    return min(finite, key=lambda r: abs(r["median_log10"] - target))


def ratio_figure(rows: list[dict], best: dict) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    lrs = [r["lr"] for r in rows]
    for i, name in enumerate(rows[0]["params"]):
        axes[0].plot(lrs, [r["log10_update_data"][i] for r in rows], marker="o", alpha=0.6, label=name)
    axes[0].plot(lrs, [r["median_log10"] for r in rows], "k-", lw=2, label="median")
    axes[0].axhline(math.log10(TARGET_UPDATE_DATA), color="k", ls=":", label="1e-3")
    axes[0].axvline(best["lr"], color="r", ls="--", label=f"recommended {best['lr']:g}")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("learning rate")
    axes[0].set_ylabel("log10 update:data (settled)")
    axes[0].legend(fontsize=7)
    for name, pts in best["series"].items():
        axes[1].plot([s for s, _ in pts], [log10_or_nan(v) for _, v in pts], label=name)
    axes[1].axhline(math.log10(TARGET_UPDATE_DATA), color="k", ls=":")
    axes[1].set_title(f"update:data over training at lr {best['lr']:g}")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("log10 update:data")
    fig.tight_layout()
    return fig


def run(steps: int | None = None, seed: int = DEFAULT_SEED, progress: bool = False, data=None) -> ExperimentResult:
    steps = DEFAULT_STEPS if steps is None else steps
    rows = [run_rate(lr, steps, seed, progress, data) for lr in LEARNING_RATES]
    best = recommend(rows)
    for r in rows:
        r["recommended"] = r is best
    findings = [
        "settled log10 update:data, median over the weight matrices: " +
        ", ".join(f"lr {r['lr']:g}: {r['median_log10']:.2f}" for r in rows) + ".",
        f"recommended learning rate: {best['lr']:g} (median log10 update:data {best['median_log10']:.2f}, "
        f"target {math.log10(TARGET_UPDATE_DATA):.0f}); its dev loss after {steps} steps: {best['dev']:.4f}.",
    ]
    columns = [Column("lr", "learning rate", "{:g}"), Column("log10_update_data", "log10 update:data by matrix",
                                                             "{:.2f}"),
               Column("median_log10", "median", "{:.2f}"), Column("dev", "dev loss", "{:.4f}"),
               Column("recommended", "recommended"), Column("diverged", "diverged")]
    table = [{k: v for k, v in r.items() if k != "series"} for r in rows]
    settings = {"preset": PRESET, "steps": steps, "seed": seed, "data": data_name(data)}
    return ExperimentResult(NAME, "Learning rate by update:data", settings, columns, table, findings,
                            data={"recommended_lr": best["lr"], "series": {r["lr"]: r["series"] for r in rows}},
                            figures={"update-data": lambda: ratio_figure(rows, best)})
