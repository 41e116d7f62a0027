"""Health check: rules over saved diagnostic records, each giving a verdict that names the layer, the
value, the threshold, the likely cause and the fix. Rules read records only (``recorder.py``), so a
finished run is checked without its model.

Verdict statuses: ``pass`` (cause and fix are None), ``warn``, ``fail``. Per-layer quantities are
averaged over the last ``LATEST`` sampled steps, so a verdict describes the network as it is now;
the loss at init reads the step-0 record, update:data the median over all sampled steps. The rules of
sequence models (gradient through time, gates, attention, residual stream) are in
``health_sequence.py`` and run after these; the verdict and the records' view in ``verdict.py``.
"""

from __future__ import annotations

import math
import statistics

from charlab.diagnostics.health_sequence import SEQUENCE_RULES
from charlab.diagnostics.verdict import LATEST, Records, Verdict, graded  # noqa: F401  (re-exported)

INIT_LOSS_WARN, INIT_LOSS_FAIL = 1.25, 2.0  # x -ln(1/V): lecture's naive init starts at 27 against 3.30
SATURATION_WARN, SATURATION_FAIL = 0.10, 0.25  # lecture: ~5% saturated tanh units is healthy
MIN_DEPTH = 3  # layer-over-layer trends need at least 3 bounded layers
DEPTH_WARN, DEPTH_FAIL = 1.3, 1.5  # per-layer std factor (or its inverse): gain 0.5 tanh nets shrink ~0.6x a layer
OUTLIER_WARN, OUTLIER_FAIL = 1.0, 2.0  # |log10(grad:data / median)|: 10x and 100x from the other weights
UPDATE_TARGET = -3.0  # lecture: log10(update:data) near -3 (updates ~1/1000 of the values)
UPDATE_WARN, UPDATE_FAIL = 1.0, 1.5  # decades away from the target
DEAD_FAIL = 0.05  # fraction of a layer's units dead on every training example; any dead unit warns
BN_BATCH_WARN, BN_BATCH_FAIL = 16, 4  # examples per BatchNorm batch: fewer make batch statistics noise
BN_GAP_WARN, BN_GAP_FAIL = 0.1, 0.3  # |running mean - full-set mean| in full-set stds
MODE_GAP_WARN, MODE_GAP_FAIL = 0.05, 0.2  # eval-mode minus train-mode loss on the same batch, nats


def rule_loss_at_init(r: Records) -> list[Verdict]:
    if r.init is None:
        return []
    expected = r.init["expected"]
    return [graded("loss at init", None, r.init["loss"], INIT_LOSS_WARN * expected, INIT_LOSS_FAIL * expected,
                   f"the first loss is far above -ln(1/V) = {expected:.2f}: the output layer is overconfident "
                   "(large initial logits), so early steps only squash the logits",
                   "scale the output layer's weights down (x0.01) and zero its bias (--init fix-softmax or kaiming)")]


def rule_saturation(r: Records) -> list[Verdict]:
    """Tanh layers outside recurrent cells (inside them: ``health_sequence.rule_cell_saturation``)."""
    cells = set(r.cell_layers())
    return [graded("saturation", name, r.layer_mean(name, lambda e: e["out"].get("saturation")),
                   SATURATION_WARN, SATURATION_FAIL,
                   "too many tanh outputs sit at ±1, where the local gradient 1 - t² is ~0: "
                   "the pre-activations are too large",
                   "shrink the weights feeding this layer (kaiming init: gain / sqrt(fan_in)) or add BatchNorm "
                   "before the tanh (--init kaiming, --norm batchnorm)")
            for name in r.bounded() if name not in cells
            and r.layer_mean(name, lambda e: e["out"].get("saturation")) is not None]


def depth_factor(stds: list[float]) -> float:
    """Geometric mean factor of std from one layer to the next."""
    stds = [max(s, 1e-30) for s in stds]
    return (stds[-1] / stds[0]) ** (1.0 / (len(stds) - 1))


def _depth_rule(rule: str, r: Records, getter, what: str, backward: bool) -> list[Verdict]:
    names = r.bounded()
    stds = [r.layer_mean(n, getter) for n in names]
    if len(names) < MIN_DEPTH or any(s is None for s in stds):
        return []
    factor = depth_factor(stds[::-1] if backward else stds)
    direction = "backward" if backward else "forward"
    span = f"{names[0]}..{names[-1]}"
    if factor < 1:
        return [graded(rule, span, factor, 1 / DEPTH_WARN, 1 / DEPTH_FAIL,
                       f"vanishing: {what} std shrinks ~{factor:.2f}x per layer going {direction}: the layers' "
                       "gain is too small", "use kaiming init with the activation's gain (5/3 for tanh: --gain "
                       "1.667) or add BatchNorm (--norm batchnorm)", higher_is_worse=False)]
    return [graded(rule, span, factor, DEPTH_WARN, DEPTH_FAIL,
                   f"exploding: {what} std grows ~{factor:.2f}x per layer going {direction}: the layers' gain is "
                   "too large", "lower the init gain towards the activation's (5/3 for tanh) or add BatchNorm "
                   "(--norm batchnorm)")]


def rule_activation_depth(r: Records) -> list[Verdict]:
    return _depth_rule("activations across layers", r, lambda e: e["out"]["std"], "activation", backward=False)


def rule_gradient_depth(r: Records) -> list[Verdict]:
    return _depth_rule("gradients across layers", r, lambda e: e.get("grad", {}).get("std"), "gradient",
                       backward=True)


def param_mean(r: Records, name: str, key: str) -> float | None:
    values = [p[key] for s in r.latest() for p in s["params"] if p["name"] == name and p.get(key) is not None]
    return sum(values) / len(values) if values else None


def rule_grad_data_outlier(r: Records) -> list[Verdict]:
    """The output layer is left out: its weights start 100x small (so the loss starts at -ln(1/V)),
    which makes its grad:data large early by design; the lecture shows it settles with training."""
    names = r.weights_2d()[:-1]
    ratios = {n: param_mean(r, n, "grad_data") for n in names}
    logs = {n: math.log10(v) for n, v in ratios.items() if v and v > 0}
    if len(logs) < 2:
        return []
    median = statistics.median(logs.values())
    return [graded("grad:data outlier", n, abs(lg - median), OUTLIER_WARN, OUTLIER_FAIL,
                   f"grad:data {10 ** lg:.2g} is {10 ** abs(lg - median):.0f}x "
                   f"{'above' if lg > median else 'below'} the other weights' median: this weight learns at a very "
                   "different speed (its scale or its gradient is off)",
                   "initialise this weight like the others (kaiming: gain / sqrt(fan_in)) or normalise its input "
                   "(BatchNorm); with SGD a per-layer scale mismatch is not corrected by the optimizer")
            for n, lg in logs.items()]


def rule_update_data(r: Records) -> list[Verdict]:
    names = r.weights_2d()
    per_step = []
    for s in r.steps:
        logs = [math.log10(p["update_data"]) for p in s["params"]
                if p["name"] in names and p.get("update_data", 0) > 0]
        if logs:
            per_step.append(statistics.median(logs))
    if not per_step:
        return []
    value = statistics.median(per_step)
    off = value - UPDATE_TARGET
    too = "low" if off < 0 else "high"
    verdict = graded("update:data", "all weights (median)", abs(off), UPDATE_WARN, UPDATE_FAIL,
                     f"log10(update:data) is {value:.2f}, {abs(off):.1f} decades {'below' if off < 0 else 'above'} "
                     f"the ~-3 of healthy training: the learning rate is too {too}",
                     f"{'raise' if off < 0 else 'lower'} --lr by about 10^{abs(off):.1f}x (the lecture aims for "
                     "updates ~1/1000 of the values)")
    verdict.value = value
    verdict.threshold = None if verdict.status == "pass" else UPDATE_TARGET + math.copysign(verdict.threshold, off)
    return [verdict]


def rule_dead_units(r: Records) -> list[Verdict]:
    if r.probe is None:
        return []
    verdicts = []
    for layer in r.probe["bounded"]:
        fraction = layer["dead"] / max(layer["units"], 1)
        v = graded("dead units", layer["name"], fraction, 0.0, DEAD_FAIL,
                   f"{layer['dead']} of {layer['units']} units are saturated (|h| > 0.99) on every training example: "
                   "they never pass a gradient and never learn", "lower the init scale feeding this layer (kaiming "
                   "init), add BatchNorm, or lower the learning rate if units died during training")
        verdicts.append(v)
    return verdicts


def _batchnorm_layers(r: Records) -> list[str]:
    return [n for n in r.layer_order() if r.info.get(n, {}).get("batchnorm")]


def rule_batchnorm_batch(r: Records) -> list[Verdict]:
    bns = _batchnorm_layers(r)
    if not bns or "batch_size" not in r.meta:
        return []
    return [graded("batchnorm batch size", bns[0], r.meta["batch_size"], BN_BATCH_WARN, BN_BATCH_FAIL,
                   f"BatchNorm normalises with the statistics of a batch of {r.meta['batch_size']} examples: too "
                   "few for stable statistics, so each example's output depends strongly on its batchmates",
                   f"train with --batch-size {2 * BN_BATCH_WARN} or more, or use a per-example normalisation "
                   "(LayerNorm) instead", higher_is_worse=False)]


def rule_bias_before_batchnorm(r: Records) -> list[Verdict]:
    order, verdicts = r.layer_order(), []
    for prev, nxt in zip(order, order[1:]):
        a, b = r.info.get(prev, {}), r.info.get(nxt, {})
        if b.get("batchnorm") and a.get("bias") and a.get("weight_2d"):
            verdicts.append(Verdict("bias before batchnorm", "warn", prev, None, None,
                                    f"{prev} ({a['type']}) has a bias and feeds {nxt} (BatchNorm), which subtracts "
                                    "the batch mean: the bias cancels out, gets zero gradient and is wasted",
                                    "build that layer with bias=False (BatchNorm's own bias takes its role)"))
    return verdicts or ([Verdict("bias before batchnorm", "pass", None, None, None, None, None)]
                        if _batchnorm_layers(r) else [])


def rule_batchnorm_running(r: Records) -> list[Verdict]:
    if r.probe is None:
        return []
    verdicts = [graded("batchnorm running stats", bn["name"], bn["mean_gap_std"], BN_GAP_WARN, BN_GAP_FAIL,
                       "the running mean is far from the mean of the whole training set: eval mode normalises "
                       "with stale statistics (momentum too small for the steps trained, or the data drifted)",
                       "train longer, raise --bn-momentum, or recompute the running statistics over the training "
                       "set after training (the lecture's calibration pass)")
                for bn in r.probe["batchnorm"]]
    loss = r.probe.get("loss")
    if loss:
        gap = loss["eval_mode"] - loss["train_mode"]
        verdicts.append(graded("train vs eval mode", None, gap, MODE_GAP_WARN, MODE_GAP_FAIL,
                               "the same batch scores worse with running statistics (eval mode) than with batch "
                               "statistics (train mode): the running statistics do not match the data",
                               "recompute the BatchNorm running statistics over the training set, or raise "
                               "--bn-momentum"))
    return verdicts


RULES = (rule_loss_at_init, rule_saturation, rule_activation_depth, rule_gradient_depth, rule_grad_data_outlier,
         rule_update_data, rule_dead_units, rule_batchnorm_batch, rule_bias_before_batchnorm, rule_batchnorm_running,
         *SEQUENCE_RULES)


def check(records: list[dict]) -> list[Verdict]:
    """Every rule over the records, in a fixed order."""
    view = Records(records)
    return [v for rule in RULES for v in rule(view)]


def worst(verdicts: list[Verdict], rule: str) -> str | None:
    """The worst status among the verdicts of one rule (None if the rule did not apply)."""
    order = {"pass": 0, "warn": 1, "fail": 2}
    statuses = [v.status for v in verdicts if v.rule == rule]
    return max(statuses, key=order.__getitem__) if statuses else None
