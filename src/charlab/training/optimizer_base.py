"""The base of charlab's optimizers: parameter groups, per-parameter state and torch's ``state_dict`` format,
without ``torch.optim.Optimizer``.

``torch.optim.Optimizer``'s ``__init__``, ``zero_grad`` and ``state_dict`` are wrapped in
``torch._disable_dynamo``, which imports ``torch._dynamo`` (and with it sympy and the compiler's
front end) on the first call: 1.2-1.7 s of every ``charlab train``'s start-up on this 2-core machine,
a quarter of ``--preset fast``'s whole run, for a compiler those optimizers never use. This base keeps
what the loop and the checkpoints use (``param_groups`` with their ``lr``, ``state``, ``zero_grad``,
``state_dict``/``load_state_dict``) in torch's layout: ``{"state": {index: {...}}, "param_groups":
[{hyper-parameters..., "params": [index, ...]}]}``, the indices numbering the parameters group by
group, so a state dict saved by either loads into either (``tests/test_optim.py``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import torch


class Optimizer:
    """Parameter groups (each a dict with ``params`` and the hyper-parameters of ``defaults``) and the
    per-parameter ``state``; subclasses define ``step``."""

    def __init__(self, params: Iterable, defaults: dict):
        self.defaults = dict(defaults)
        params = list(params)
        if not params:
            raise ValueError("the optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list[dict] = [{**self.defaults, **g, "params": list(g["params"])} for g in groups]
        self.state: defaultdict = defaultdict(dict)  # parameter -> its state (e.g. step, exp_avg)

    def step(self, closure=None) -> None:
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    def _indexed(self) -> list[torch.Tensor]:
        """Every parameter, group by group: position = its index in the state dict."""
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        index = {id(p): i for i, p in enumerate(self._indexed())}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"]) for s, g in zip(saved, self.param_groups)):
            raise ValueError("the loaded state dict's parameter groups do not match this optimizer's")
        by_index = dict(zip((i for s in saved for i in s["params"]), self._indexed()))
        self.state = defaultdict(dict)
        for i, values in state_dict["state"].items():
            p = by_index[int(i)]
            self.state[p] = {k: cast_like(k, v, p) for k, v in values.items()}
        self.param_groups = [{**s, "params": g["params"]} for s, g in zip(saved, self.param_groups)]


def cast_like(key: str, value, param: torch.Tensor):
    """A loaded state value on the parameter's device; floating-point moments in its dtype, the step
    count kept float32 (as torch's fused optimizers keep it)."""
    if not isinstance(value, torch.Tensor):
        return value
    if key == "step":
        return value.to(device=param.device, dtype=torch.float32)
    if value.is_floating_point():
        return value.to(device=param.device, dtype=param.dtype)
    return value.to(device=param.device)
