"""Verdicts on sequence models: the gradient through time, gates, attention, the residual stream.

Rules over the tap entries of the step records (``taps.py``, read through ``sequence_records.py``); each
applies only when its records exist, so a window model's verdicts are unchanged. ``health.RULES`` runs
these after its own. Values are averaged over the last ``LATEST`` sampled steps (the gradient through
time as the mean of its log10, a factor that spans decades), except attention at initialisation,
which reads the step record of the initialisation (``Records.init_step``).
"""

from __future__ import annotations

import math
import statistics

from charlab.diagnostics import sequence_records as sr
from charlab.diagnostics.quantities_sequence import TINY
from charlab.diagnostics.verdict import Records, Verdict, graded

VANISHING_WARN = 1e-3  # last-to-first factor (issue 15): the preset GRU/LSTM/RNN trained settle at 1e-2..1e-1
VANISHING_FAIL = 1e-6  # a millionth: the first positions learn nothing from the item's end (RNN at gain 0.3: 1e-7)
EXPLODING_WARN = 1e1  # a decade of growth where healthy cells decay (tanh RNN at recurrent gain 3: ~20)
EXPLODING_FAIL = 1e3  # issue 15: three decades, the gradient dwarfs the weights it updates
FORGET = "forget_gate"  # the LSTM's forget-gate tap (nn/recurrent.py)
FORGET_CLOSED_WARN, FORGET_CLOSED_FAIL = 0.25, 0.5  # fraction of forget activations < 0.03: the memory is wiped
CELL_SATURATION_WARN = 0.75  # fraction past 0.03/0.97 (gates) or |t| > 0.97 (tanh): trained gates act as
# switches (the LSTM preset: ~40% at 2,000 steps, up to 58% at 10,000), far beyond the lecture's 5% for an MLP
CELL_SATURATION_FAIL = 0.9  # nine in ten outputs at the ends: the gate is a constant and learns no more
COLLAPSED_WARN, COLLAPSED_FAIL = 0.5, 0.25  # entropy / uniform at init: random init gives ~0.85, logits x16 give ~0.08
UNIFORM_WARN, UNIFORM_FAIL = 0.9, 0.97  # entropy / uniform after training: 1 is a plain average (a bag of words)
MIN_TRAINED_STEPS = 100  # "after training": the latest sampled step at least this far from the initialisation
MIN_BLOCKS = 3  # "block over block" needs a trend over at least 3 blocks
RESIDUAL_WARN, RESIDUAL_FAIL = 1.5, 2.0  # residual std factor per block: the transformer preset grows ~1.35x


def _mean_log10(values: list[float]) -> float:
    return 10 ** statistics.mean(math.log10(max(v, TINY)) for v in values)


def rule_gradient_through_time(r: Records) -> list[Verdict]:
    factors: dict[str, list[float]] = {}
    for record in r.latest():
        for cell, factor in sr.through_time(record).items():
            factors.setdefault(cell, []).append(factor)
    return [_through_time_verdict(cell, _mean_log10(values)) for cell, values in factors.items()]


def _through_time_verdict(cell: str, factor: float) -> Verdict:
    rule = "gradient through time"
    if factor < 1:
        return graded(rule, cell, factor, VANISHING_WARN, VANISHING_FAIL,
                      f"vanishing: backpropagation from the last position of a batch to the first scales the "
                      f"gradient by {factor:.1e}: the early positions learn nothing from the later losses",
                      "use a gated cell (--model gru or lstm; an LSTM with its forget-gate bias at +1); bring the "
                      "recurrent gain towards 1 (below it the gradient shrinks every step, far above it the tanh "
                      "saturates and passes none); or shorten the context the model must carry", higher_is_worse=False)
    return graded(rule, cell, factor, EXPLODING_WARN, EXPLODING_FAIL,
                  f"exploding: backpropagation from the last position of a batch to the first multiplies the "
                  f"gradient by {factor:.1e}: the recurrence amplifies it at every step back",
                  "clip the gradient norm (--grad-clip 1), lower the recurrent gain (init gain 1 or less), or use a "
                  "gated cell (--model gru or lstm)")


def _gate_means(r: Records) -> dict[str, dict[str, float]]:
    """Gate tap -> mean of its ``mean``, ``low`` and ``high`` over the latest steps."""
    entries: dict[str, list[dict]] = {}
    for record in r.latest():
        for name, entry in sr.gates(record).items():
            entries.setdefault(name, []).append(entry)
    return {name: {k: statistics.mean(e[k] for e in es) for k in ("mean", "low", "high")}
            for name, es in entries.items()}


def rule_forget_gate(r: Records) -> list[Verdict]:
    return [graded("forget gate closed", name, g["low"], FORGET_CLOSED_WARN, FORGET_CLOSED_FAIL,
                   f"{100 * g['low']:.0f}% of the forget gate's activations are below 0.03 (mean {g['mean']:.2f}): "
                   "the cell state is wiped at every step, so the LSTM's memory, and the gradient along it, lasts "
                   "one step", "initialise the forget-gate bias to +1 (the second quarter of the gate Linear's bias, "
                   "Jozefowicz et al. 2015) so that f starts near 0.73; lower the learning rate if it closed in "
                   "training")
            for name, g in _gate_means(r).items() if name.rsplit(".", 1)[-1] == FORGET]


def rule_cell_saturation(r: Records) -> list[Verdict]:
    """Gates other than the forget gate (it has its own rule), and the tanh layers inside recurrent cells."""
    values = {name: g["low"] + g["high"] for name, g in _gate_means(r).items() if name.rsplit(".", 1)[-1] != FORGET}
    for name in r.cell_layers():
        saturation = r.layer_mean(name, lambda e: e["out"].get("saturation"))
        if saturation is not None:
            values[name] = saturation
    return [graded("cell saturation", name, value, CELL_SATURATION_WARN, CELL_SATURATION_FAIL,
                   f"{100 * value:.0f}% of this {'tanh' if name in r.info else 'gate'}'s outputs sit at the ends "
                   "of its range, where it passes almost no gradient: it has become a constant switch",
                   "lower the learning rate or the init gain of the cell's Linear, or clip gradients (--grad-clip 1)")
            for name, value in values.items()]


def _attention_means(records: list[dict]) -> dict[str, dict[str, float]]:
    """Attention layer -> entropy / uniform (``value``), entropy, uniform and logit std, averaged over the
    heads and ``records``."""
    per_layer: dict[str, list[dict]] = {}
    for record in records:
        for layer, entry in sr.attention(record).items():
            per_layer.setdefault(layer, []).append(
                {"value": statistics.mean(sr.normalised_entropy(entry)), "entropy": statistics.mean(entry["entropy"]),
                 "uniform": entry["uniform"], "spread": statistics.mean(entry.get("logit_std") or [math.nan])})
    return {layer: {k: statistics.mean(e[k] for e in es) for k in es[0]} for layer, es in per_layer.items()}


def rule_attention_at_init(r: Records) -> list[Verdict]:
    if r.init_step is None:
        return []
    return [graded("attention collapsed at init", layer, a["value"], COLLAPSED_WARN, COLLAPSED_FAIL,
                   f"at initialisation the attention puts almost all its weight on one position (entropy "
                   f"{a['entropy']:.2f} nats against {a['uniform']:.2f} for uniform attention): the logits are too "
                   f"large (std {a['spread']:.1f}), so the softmax is saturated and passes almost no gradient",
                   "scale the scores by 1/sqrt(head size), initialise the query and key weights smaller, lower the "
                   "learning rate", higher_is_worse=False)
            for layer, a in _attention_means([r.init_step]).items()]


def rule_attention_uniform(r: Records) -> list[Verdict]:
    if not r.steps or (r.meta.get("from_init", True) and r.steps[-1]["step"] < MIN_TRAINED_STEPS):
        return []
    return [graded("attention uniform", layer, a["value"], UNIFORM_WARN, UNIFORM_FAIL,
                   f"after training the attention is still spread evenly over the visible positions (entropy "
                   f"{a['entropy']:.2f} nats against {a['uniform']:.2f} for uniform attention): every position "
                   "averages its context like a bag of words, so the model ignores which character came where",
                   "check that the query and key weights learn (not zero, not frozen), raise the learning rate, or "
                   "train longer")
            for layer, a in _attention_means(r.latest()).items()]


def rule_residual_growth(r: Records) -> list[Verdict]:
    names = [name for name, _ in sr.residual(r.steps[-1])] if r.steps else []
    if len(names) < MIN_BLOCKS:
        return []
    stds = [statistics.mean(s for record in r.latest() for n, s in sr.residual(record) if n == name)
            for name in names]
    factor = (max(stds[-1], TINY) / max(stds[0], TINY)) ** (1 / (len(stds) - 1))
    return [graded("residual stream growth", f"{names[0]}..{names[-1]}", factor, RESIDUAL_WARN, RESIDUAL_FAIL,
                   f"the residual stream's std grows ~{factor:.2f}x per block ({stds[0]:.2f} to {stds[-1]:.2f}): "
                   "each block adds more than the stream holds, so later blocks' LayerNorms shrink everything "
                   "and the earlier blocks' contributions fade",
                   "use pre-norm blocks and scale the init of each block's output projection (attention c_proj and "
                   "the MLP's last Linear) by 1/sqrt(2 x layers), as GPT-2 does")]


SEQUENCE_RULES = (rule_gradient_through_time, rule_forget_gate, rule_cell_saturation, rule_attention_at_init,
                  rule_attention_uniform, rule_residual_growth)
