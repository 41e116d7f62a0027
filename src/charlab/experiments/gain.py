"""The gain sweep: the lecture's 5-layer, 100-unit net at kaiming gains {0.5, 1, 5/3, 3}, with and
without tanh, with and without BatchNorm.

Per hidden layer, at initialisation (step 0) and at the last step: the std of the layer's output,
the % of tanh outputs saturated, the std of the gradient at that output, and grad:data of its
Linear weight. What the lecture shows: with tanh and no BatchNorm, gain 5/3 keeps the stds steady
and saturation near 5%, gain 1 lets them shrink layer by layer, gain 3 saturates a large fraction;
without tanh (a stack of linear maps), gain 1 keeps the std steady and 5/3 blows it up by 5/3 per
layer; with BatchNorm the forward statistics hardly depend on the gain at all.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from charlab.config import DEFAULT_SEED
from charlab.diagnostics.quantities import SATURATION_THRESHOLD
from charlab.diagnostics.recorder import Recorder
from charlab.experiments.blocks import block_stats, hidden_blocks, meta_record
from charlab.experiments.runner import Column, ExperimentResult, data_name, recorded_steps, schedule_at_ends, train_variant
from charlab.training.stopping import TrainingStopped

NAME = "gain"
PRESET = "deep-bn"  # 5 hidden layers of 100 units, block size 3, embedding 10: the lecture's deep net
DEFAULT_STEPS = 1000  # the lecture's "after 1000 steps" look at the deep net
GAINS = {"0.5": 0.5, "1": 1.0, "5/3": 5 / 3, "3": 3.0}  # label -> gain; 5/3 is tanh's kaiming gain
NORMS = ("none", "batchnorm")
ACTIVATIONS = ("tanh", "none")


def run_variant(norm: str, activation: str, gain: float, steps: int, seed: int, progress: bool, data) -> dict:
    """Per-block statistics at init and at the last step; a variant whose loss turns non-finite (a linear
    stack at a large gain) keeps its init statistics and records where it diverged."""
    recorder = Recorder(schedule_at_ends(steps), probe=False)
    try:
        trained = train_variant(PRESET, steps, seed, recorder, progress=progress, data=data, norm=norm,
                                activation=activation, gain=gain, init="kaiming")
        diverged = None
    except TrainingStopped as stop:
        trained, diverged = None, str(stop).split(";")[0]
    blocks = hidden_blocks(meta_record(recorder.records))
    records = recorded_steps(recorder)
    final = None if diverged else block_stats(records[max(records)], blocks)
    return {"init": block_stats(records[0], blocks), "final": final, "final_step": steps - 1,
            "dev": trained.losses["dev"] if trained else None, "diverged": diverged}


def sweep(steps: int, seed: int, progress: bool, data) -> dict:
    return {(norm, act, label): run_variant(norm, act, gain, steps, seed, progress, data)
            for norm in NORMS for act in ACTIVATIONS for label, gain in GAINS.items()}


def table_rows(results: dict) -> list[dict]:
    rows = []
    for (norm, act, label), r in results.items():
        rows.append({"norm": norm, "activation": act, "gain": label, "phase": "init", **r["init"]})
        phase = f"step {r['final_step']}" if r["final"] else f"diverged: {r['diverged']}"
        rows.append({"norm": norm, "activation": act, "gain": label, "phase": phase, **(r["final"] or {}),
                     "dev": r["dev"]})
    return rows


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def findings(results: dict) -> list[str]:
    tanh = {g: results[("none", "tanh", g)]["init"] for g in GAINS}
    linear = {g: results[("none", "none", g)]["init"] for g in GAINS}
    bn = {g: results[("batchnorm", "tanh", g)]["init"] for g in GAINS}
    sat = ", ".join(f"gain {g}: {mean(s['saturation_pct']):.1f}%" for g, s in tanh.items())
    tanh_std = "; ".join(f"gain {g}: " + " ".join(f"{v:.2f}" for v in s["act_std"]) for g, s in tanh.items())
    grow = ", ".join(f"gain {g}: x{s['act_std'][-1] / s['act_std'][0]:.2f}" for g, s in linear.items())
    bn_spread = max(max(s["act_std"]) for s in bn.values()) - min(min(s["act_std"]) for s in bn.values())
    bn_sat = [mean(s["saturation_pct"]) for s in bn.values()]
    bn_gd = ", ".join(f"gain {g}: {mean(s['grad_data']):.2e}" for g, s in bn.items())
    return [
        f"tanh, no BatchNorm, at init: mean % saturated over the 5 layers - {sat}.",
        f"tanh, no BatchNorm, at init: activation std layer 1..5 - {tanh_std}.",
        f"linear only (no tanh), no BatchNorm, at init: activation std of layer 5 / layer 1 - {grow} "
        "(a linear stack multiplies the std by the gain per layer: 1 keeps it, 5/3 explodes it).",
        f"with BatchNorm (tanh), at init: every activation std across all gains lies within {bn_spread:.3f} and "
        f"the mean saturation within {max(bn_sat) - min(bn_sat):.3f} points - BatchNorm normalises the gain away; "
        f"only grad:data still scales with 1/gain^2 ({bn_gd}).",
    ]


def per_layer_figure(results: dict, key: str, ylabel: str, activations=ACTIVATIONS) -> plt.Figure:
    fig, axes = plt.subplots(len(NORMS), len(activations), figsize=(5 * len(activations), 7), squeeze=False)
    for i, norm in enumerate(NORMS):
        for j, act in enumerate(activations):
            ax = axes[i][j]
            for label in GAINS:
                r = results[(norm, act, label)]
                line, = ax.plot(range(1, len(r["init"][key]) + 1), r["init"][key], marker="o", label=f"gain {label}")
                if r["final"]:
                    ax.plot(range(1, len(r["final"][key]) + 1), r["final"][key], ls="--", color=line.get_color())
            ax.set_title(f"norm {norm}, activation {act}")
            ax.set_xlabel("hidden layer")
            ax.set_ylabel(ylabel)
            ax.set_xticks(range(1, len(r["init"][key]) + 1))
    axes[0][0].legend(title="solid: init, dashed: trained")
    fig.tight_layout()
    return fig


def run(steps: int | None = None, seed: int = DEFAULT_SEED, progress: bool = False, data=None) -> ExperimentResult:
    steps = DEFAULT_STEPS if steps is None else steps
    results = sweep(steps, seed, progress, data)
    columns = [Column("norm", "norm"), Column("activation", "activation"), Column("gain", "gain"),
               Column("phase", "phase"), Column("act_std", "activation std by layer", "{:.2f}"),
               Column("saturation_pct", "% saturated by layer", "{:.1f}"),
               Column("grad_std", "gradient std by layer", "{:.1e}"),
               Column("grad_data", "grad:data by layer", "{:.1e}"), Column("dev", "dev loss", "{:.4f}")]
    saturated = f"% saturated (|t| > {SATURATION_THRESHOLD})"
    figures = {
        "activations": lambda: per_layer_figure(results, "act_std", "activation std"),
        "saturation": lambda: per_layer_figure(results, "saturation_pct", saturated, ("tanh",)),
        "gradients": lambda: per_layer_figure(results, "grad_std", "gradient std"),
        "grad-data": lambda: per_layer_figure(results, "grad_data", "grad:data"),
    }
    return ExperimentResult(NAME, "Kaiming gain sweep on the 5-layer, 100-unit net",
                            {"preset": PRESET, "steps": steps, "seed": seed, "data": data_name(data),
                             "gains": list(GAINS)},
                            columns, table_rows(results), findings(results), figures=figures)
