"""The lecture's ladder of fixes to the MLP's initialisation, each rung one change on the last:

original (N(0,1) everywhere) -> fix-softmax (output layer x0.01, logits ~0 at init) -> fix-tanh
(hidden layer x0.2, tanh out of saturation) -> kaiming (hidden gain 5/3 / sqrt(fan_in)) -> batchnorm
(kaiming + BatchNorm after the hidden Linear). Same data, seed, batches and steps for every rung.

Per rung: the loss at step 0 (against -ln(1/V)), the % of tanh outputs saturated at init, the final
train/dev loss and the wall time. At the lecture's 200,000 steps the dev losses should land within
``LECTURE_TOLERANCE`` of the lecture's (``benchmarks/init_ladder_200k.py`` runs that check).
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from charlab.config import DEFAULT_SEED
from charlab.diagnostics.quantities import SATURATION_THRESHOLD, bin_centres
from charlab.diagnostics.recorder import Recorder
from charlab.experiments.reference import LECTURE_STEPS
from charlab.experiments.runner import Column, ExperimentResult, data_name, recorded_steps, schedule_at_ends, train_variant
from charlab.models.base import expected_init_loss

NAME = "init-ladder"
DEFAULT_STEPS = LECTURE_STEPS
RUNGS = {  # rung -> (preset, overrides): each differs from the one before in one respect
    "original": ("mlp", {"init": "naive"}),
    "fix-softmax": ("mlp", {"init": "fix-softmax"}),
    "fix-tanh": ("mlp", {"init": "fix-tanh"}),
    "kaiming": ("mlp", {"init": "kaiming"}),
    "batchnorm": ("mlp-bn", {}),
}
LECTURE_DEV = {"original": 2.168, "fix-softmax": 2.13, "fix-tanh": 2.103, "kaiming": 2.107, "batchnorm": 2.105}
LECTURE_TOLERANCE = 0.02  # split, batch order and float rounding differ from the notebook's


def run_rung(rung: str, steps: int, seed: int, progress: bool, data) -> dict:
    preset, overrides = RUNGS[rung]
    recorder = Recorder(schedule_at_ends(steps), probe=False)
    trained = train_variant(preset, steps, seed, recorder, progress=progress, data=data, **overrides)
    init = recorded_steps(recorder)[0]
    tanh = [entry["out"] for entry in init["layers"] if "saturation" in entry["out"]]
    return {"rung": rung, "loss_step0": trained.step0_loss, "expected_step0": expected_init_loss(trained.vocab.size),
            "saturation_pct": 100 * sum(t["saturation"] for t in tanh) / len(tanh),
            "train": trained.losses["train"], "dev": trained.losses["dev"], "lecture_dev": LECTURE_DEV[rung],
            "wall_time_s": trained.wall_time_s, "tanh_init": tanh[0]}


def findings(rows: list[dict], steps: int) -> list[str]:
    by = {r["rung"]: r for r in rows}
    lines = [
        f"loss at step 0: original {by['original']['loss_step0']:.2f}, after the softmax fix "
        f"{by['fix-softmax']['loss_step0']:.3f} (a uniform guess gives -ln(1/V) = {rows[0]['expected_step0']:.3f}).",
        f"tanh saturated at init (|t| > {SATURATION_THRESHOLD}): " +
        ", ".join(f"{r['rung']} {r['saturation_pct']:.1f}%" for r in rows) + ".",
        "dev loss: " + ", ".join(f"{r['rung']} {r['dev']:.4f}" for r in rows) + ".",
    ]
    if steps == LECTURE_STEPS:
        off = [r["rung"] for r in rows if abs(r["dev"] - r["lecture_dev"]) > LECTURE_TOLERANCE]
        lines.append(f"at the lecture's {LECTURE_STEPS} steps, dev losses are within ±{LECTURE_TOLERANCE} of the "
                     "lecture's for " + (f"all rungs except {', '.join(off)}" if off else "every rung") + ".")
    else:
        lines.append(f"{steps} steps, not the lecture's {LECTURE_STEPS}: the lecture's dev losses are shown "
                     "for reference, not compared.")
    return lines


def ladder_figure(rows: list[dict]) -> plt.Figure:
    names = [r["rung"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].bar(names, [r["loss_step0"] for r in rows])
    axes[0].axhline(rows[0]["expected_step0"], color="k", ls=":", label="-ln(1/V)")
    axes[0].set_yscale("log")
    axes[0].set_title("loss at step 0")
    axes[0].legend()
    axes[1].bar(names, [r["saturation_pct"] for r in rows])
    axes[1].set_title(f"% tanh saturated at init (|t| > {SATURATION_THRESHOLD})")
    axes[2].bar(names, [r["dev"] for r in rows], label="charlab")
    axes[2].plot(names, [r["lecture_dev"] for r in rows], "k_", markersize=30, label="lecture (200k steps)")
    axes[2].set_ylim(min(min(r["dev"] for r in rows), min(LECTURE_DEV.values())) - 0.1,
                     max(r["dev"] for r in rows) + 0.05)
    axes[2].set_title("final dev loss")
    axes[2].legend()
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def tanh_figure(rows: list[dict]) -> plt.Figure:
    """The lecture's histogram of the tanh outputs at init, one line per rung."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for r in rows:
        t = r["tanh_init"]
        ax.plot(bin_centres(t["hist_lo"], t["hist_hi"], len(t["hist"])), t["hist"], label=r["rung"])
    ax.set_xlabel("tanh output at init")
    ax.set_ylabel("density")
    ax.legend()
    return fig


def run(steps: int | None = None, seed: int = DEFAULT_SEED, progress: bool = False, data=None) -> ExperimentResult:
    steps = DEFAULT_STEPS if steps is None else steps
    rows = [run_rung(rung, steps, seed, progress, data) for rung in RUNGS]
    columns = [Column("rung", "rung"), Column("loss_step0", "loss at step 0", "{:.3f}"),
               Column("saturation_pct", "% saturated at init", "{:.1f}"), Column("train", "train loss", "{:.4f}"),
               Column("dev", "dev loss", "{:.4f}"), Column("lecture_dev", "lecture dev (200k)", "{:.3f}"),
               Column("wall_time_s", "wall time (s)", "{:.1f}")]
    figures = {"ladder": lambda: ladder_figure(rows), "tanh-init": lambda: tanh_figure(rows)}
    table = [{k: v for k, v in r.items() if k != "tanh_init"} for r in rows]
    settings = {"steps": steps, "seed": seed, "data": data_name(data)}
    return ExperimentResult(NAME, "The initialisation ladder", settings, columns, table, findings(rows, steps),
                            data={"tanh_init": {r["rung"]: r["tanh_init"] for r in rows}},
                            figures=figures)
