"""Quantities that need a full pass over the training set, not one batch.

- dead units: bounded units (tanh) with ``|h| > 0.99`` on *every* training example;
- the lecture's saturation map (``|h| > 0.99``, one batch of examples x units);
- BatchNorm: the running mean/var against the mean/var of its input over the whole training set;
- the loss of one batch in train mode (batch statistics) against eval mode (running statistics).

Everything runs in eval mode under ``no_grad`` on a copy where the mode matters; the model's mode,
weights and running statistics are left as they were.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from charlab.data import Examples
from charlab.diagnostics import quantities as q
from charlab.inference.evaluate import EVAL_CHUNK, eval_mode

PROBE_STREAM = 3  # the probe batch's generator is seeded with seed + 3, apart from init and batches


def is_batchnorm(module: nn.Module) -> bool:
    """Any module keeping running statistics (charlab's BatchNorm1d and torch's BatchNorm*)."""
    return isinstance(getattr(module, "running_mean", None), torch.Tensor) and \
        isinstance(getattr(module, "running_var", None), torch.Tensor)


def bit_rows(mask: torch.Tensor) -> list[str]:
    """A bool (rows, cols) mask as strings of 0/1, one per row: compact in JSON, easy to redraw."""
    return ["".join("1" if v else "0" for v in row) for row in mask.tolist()]


class _Accumulator:
    """Forward hooks that accumulate per-unit statistics over all chunks of a pass."""

    def __init__(self, map_rows: int):
        self.map_rows = map_rows
        self.dead: dict[str, torch.Tensor] = {}
        self.saturated: dict[str, torch.Tensor] = {}
        self.count: dict[str, int] = {}
        self.maps: dict[str, torch.Tensor] = {}
        self.bn_sum: dict[str, torch.Tensor] = {}
        self.bn_sumsq: dict[str, torch.Tensor] = {}
        self.bn_count: dict[str, int] = {}

    def bounded_hook(self, name: str):
        def hook(module, inputs, output):
            h = output.reshape(-1, output.shape[-1])  # (N, units)
            dead = q.dead_units(h)  # (units,)
            self.dead[name] = dead if name not in self.dead else self.dead[name] & dead
            sat = (h.abs() > q.SATURATION_THRESHOLD).sum()
            self.saturated[name] = self.saturated.get(name, 0) + sat
            self.count[name] = self.count.get(name, 0) + h.numel()
            if name not in self.maps:
                self.maps[name] = q.saturation_map(h[:self.map_rows])  # (rows, units)
        return hook

    def batchnorm_hook(self, name: str):
        def hook(module, inputs, output):
            x = inputs[0].double().reshape(-1, inputs[0].shape[-1])  # (N, C)
            self.bn_sum[name] = self.bn_sum.get(name, 0) + x.sum(0)
            self.bn_sumsq[name] = self.bn_sumsq.get(name, 0) + (x * x).sum(0)
            self.bn_count[name] = self.bn_count.get(name, 0) + x.shape[0]
        return hook


def batchnorm_report(module: nn.Module, total: torch.Tensor, total_sq: torch.Tensor, n: int) -> dict:
    """Running statistics against the full-set statistics, in units of the full-set std."""
    mean = total / n  # (C,)
    var = (total_sq - n * mean * mean) / max(n - 1, 1)  # (C,) unbiased, as running_var stores
    std = torch.sqrt(var.clamp_min(0) + module.eps)  # (C,)
    gap = (module.running_mean.double() - mean).abs() / std  # (C,)
    var_ratio = (module.running_var.double() + module.eps) / (var.clamp_min(0) + module.eps)  # (C,)
    return {"mean_gap_std": float(gap.mean()), "max_mean_gap_std": float(gap.max()),
            "log10_var_ratio": float(var_ratio.log10().abs().mean())}


@torch.no_grad()
def train_vs_eval_loss(model: nn.Module, examples: Examples, batch_size: int, seed: int) -> dict:
    """Loss of one seeded batch with batch statistics (train mode) and running statistics (eval mode),
    on a copy so that the running statistics of the model are not updated."""
    gen = torch.Generator().manual_seed(seed + PROBE_STREAM)
    ix = torch.randint(0, len(examples), (min(max(batch_size, 2), len(examples)),), generator=gen)  # (B,)
    twin = copy.deepcopy(model)
    twin.train()
    _, train_loss = twin(examples.x[ix], examples.y[ix])
    twin.eval()
    _, eval_loss = twin(examples.x[ix], examples.y[ix])
    return {"train_mode": float(train_loss), "eval_mode": float(eval_loss)}


def full_pass(model: nn.Module, examples: Examples, batch_size: int, seed: int) -> dict:
    """The ``{"kind": "probe", ...}`` record: dead units, saturation, maps and BatchNorm checks."""
    acc = _Accumulator(map_rows=batch_size)
    handles = []
    for name, module in model.named_modules():
        if getattr(module, "bounded", False):
            handles.append(module.register_forward_hook(acc.bounded_hook(name)))
        elif is_batchnorm(module):
            handles.append(module.register_forward_hook(acc.batchnorm_hook(name)))
    try:
        with eval_mode(model):
            for start in range(0, len(examples), EVAL_CHUNK):
                model(examples.x[start:start + EVAL_CHUNK])
    finally:
        for handle in handles:
            handle.remove()
    modules = dict(model.named_modules())
    record = {"kind": "probe", "examples": len(examples), "bounded": [], "batchnorm": []}
    for name, dead in acc.dead.items():
        record["bounded"].append({"name": name, "units": int(dead.numel()), "dead": int(dead.sum()),
                                  "dead_units": dead.nonzero().flatten().tolist(),
                                  "saturation": float(acc.saturated[name]) / acc.count[name],
                                  "saturation_map": bit_rows(acc.maps[name])})
    for name, total in acc.bn_sum.items():
        record["batchnorm"].append({"name": name, **batchnorm_report(modules[name], total, acc.bn_sumsq[name],
                                                                    acc.bn_count[name])})
    if record["batchnorm"] and len(examples) > 1:
        record["loss"] = train_vs_eval_loss(model, examples, batch_size, seed)
    return record
