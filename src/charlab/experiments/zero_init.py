"""All-zero initialisation (the lecture's first exercise): every Linear weight and bias starts at 0.

The net trains, but only partly. Measured here, per parameter: whether it ever received a non-zero
gradient (on every step, not a sample) and how far it moved; the hidden activations and how alike
the hidden units are; and the final loss next to the unigram entropy of the data, the best a model
that ignores its input can do. The explanation is generated from those measurements.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from charlab.config import DEFAULT_SEED
from charlab.data import build_examples
from charlab.diagnostics.recorder import Recorder
from charlab.experiments.blocks import hidden_blocks, meta_record
from charlab.experiments.runner import Column, ExperimentResult, data_name, recorded_steps, schedule_at_ends, train_variant
from charlab.training.events import Observer, TrainView

NAME = "zero-init"
PRESET = "deep-bn"  # the lecture's exercise is posed on its deep BatchNorm net
DEFAULT_STEPS = 2000


class GradientReach(Observer):
    """On every step, the largest |gradient| each parameter has received (kept on the device)."""

    def on_train_start(self, view: TrainView) -> None:
        self.params = dict(view.model.named_parameters())
        self.start = {n: p.detach().clone() for n, p in self.params.items()}
        self.max_grad = {n: torch.zeros((), device=p.device) for n, p in self.params.items()}

    def on_after_backward(self, view: TrainView, step: int) -> None:
        for name, p in self.params.items():
            if p.grad is not None:
                self.max_grad[name] = torch.maximum(self.max_grad[name], p.grad.detach().abs().max())

    def report(self) -> list[dict]:
        return [{"param": n, "max_abs_grad": float(self.max_grad[n]),
                 "moved": float((p.detach() - self.start[n]).abs().max()),
                 "ever_gradient": bool(self.max_grad[n] > 0)} for n, p in self.params.items()]


def unigram_entropy(targets: torch.Tensor, vocab_size: int) -> float:
    """Entropy (nats) of the next-character distribution: the loss of the best input-blind model."""
    p = torch.bincount(targets, minlength=vocab_size).double() / targets.numel()  # (V,)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def unit_spread(weight: torch.Tensor) -> float:
    """Largest difference between any two units' incoming weights (rows): 0 means identical units."""
    return float((weight - weight[:1]).abs().max())


def measure(steps: int, seed: int, progress: bool, data) -> dict:
    reach, recorder = GradientReach(), Recorder(schedule_at_ends(steps), probe=False)
    trained = train_variant(PRESET, steps, seed, recorder, observers=[reach], progress=progress, data=data,
                            init="zero")
    blocks = hidden_blocks(meta_record(recorder.records))
    last = recorded_steps(recorder)[steps - 1]
    outputs = {e["name"]: e["out"] for e in last["layers"]}
    modules = dict(trained.model.named_modules())
    linears = [b.linear for b in blocks] + [meta_record(recorder.records)["layers"][-1]["name"]]
    train = build_examples(trained.splits["train"], trained.vocab, "window", trained.model_cfg.block_size)
    return {
        "params": reach.report(), "output": linears[-1], "linears": linears,
        "hidden_out_max": max(abs(outputs[b.output]["mean"]) + outputs[b.output]["std"] for b in blocks),
        "unit_spread": max(unit_spread(modules[n].weight.detach()) for n in linears[:-1]),
        "weight_max": {n: float(modules[n].weight.detach().abs().max()) for n in linears},
        "n_hidden": trained.model_cfg.n_hidden, "loss_step0": trained.step0_loss,
        "train": trained.losses["train"], "dev": trained.losses["dev"],
        "unigram_entropy": unigram_entropy(train.y, trained.vocab.size),
    }


def explain(m: dict) -> list[str]:
    moving = [p["param"] for p in m["params"] if p["moved"] > 0]
    still = [p["param"] for p in m["params"] if not p["ever_gradient"]]
    out_w, out_b = f"{m['output']}.weight", f"{m['output']}.bias"
    lines = [f"{len(moving)} of {len(m['params'])} parameters moved: {', '.join(moving) or 'none'}; "
             f"{len(still)} never received a non-zero gradient on any step."]
    if out_b in moving:
        lines.append(f"{out_b} learns: its gradient is softmax(logits) - onehot(target), which needs no other "
                     "weight to be non-zero.")
    if out_w in still and m["hidden_out_max"] == 0:
        lines.append(f"{out_w} stays at 0: its gradient is h^T . dlogits, and every hidden activation h is "
                     f"exactly 0 (measured: mean 0, std 0 on every hidden layer; tanh(0) = 0).")
    zero_downstream = [n for n, nxt in zip(m["linears"], m["linears"][1:]) if m["weight_max"][nxt] == 0]
    if zero_downstream and all(f"{n}.weight" in still for n in zero_downstream):
        lines.append(f"the hidden Linears ({', '.join(zero_downstream)}) and everything before them (embedding, "
                     "BatchNorm) get no gradient: the weight of the Linear downstream of each is exactly 0, so the "
                     "gradient reaching its input, dlogits . W, is 0.")
    if m["unit_spread"] == 0:
        lines.append(f"the {m['n_hidden']} units of every hidden layer are identical (largest difference between "
                     "two units' weights: 0): equal units compute the same output and would receive the same "
                     "gradient, so even with gradient flowing the symmetry would never break.")
    gap = m["train"] - m["unigram_entropy"]
    lines.append(f"so the net learns only a constant distribution over the next character: final train loss "
                 f"{m['train']:.4f} vs the unigram entropy of the training data {m['unigram_entropy']:.4f} nats "
                 f"(gap {gap:+.4f}); dev {m['dev']:.4f}. Random init breaks the symmetry and lets h carry the input.")
    return lines


def figure(m: dict) -> plt.Figure:
    names = [p["param"] for p in m["params"]]
    fig, ax = plt.subplots(figsize=(10, 4))
    floor = 1e-12  # a zero cannot be drawn on a log axis: it is drawn at this floor and labelled
    ax.bar(names, [max(p["moved"], floor) for p in m["params"]])
    ax.set_yscale("log")
    ax.set_ylabel(f"max |change| (zero drawn at {floor:g})")
    ax.set_title("how far each parameter moved from its all-zero start")
    ax.tick_params(axis="x", rotation=90)
    fig.tight_layout()
    return fig


def run(steps: int | None = None, seed: int = DEFAULT_SEED, progress: bool = False, data=None) -> ExperimentResult:
    steps = DEFAULT_STEPS if steps is None else steps
    m = measure(steps, seed, progress, data)
    columns = [Column("param", "parameter"), Column("ever_gradient", "ever a non-zero gradient"),
               Column("max_abs_grad", "largest gradient (abs)", "{:.2e}"),
               Column("moved", "largest change (abs)", "{:.2e}")]
    losses = {k: m[k] for k in ("loss_step0", "train", "dev", "unigram_entropy")}
    settings = {"preset": PRESET, "steps": steps, "seed": seed, "data": data_name(data)}
    return ExperimentResult(NAME, "All-zero initialisation", settings, columns, m["params"], explain(m),
                            data={"losses": losses}, figures={"moved": lambda: figure(m)})
