"""The optimizers: ``--optimizer sgd`` (the lecture's plain update) and ``--optimizer adamw``.

``PlainSGD`` is ``p -= lr * p.grad`` for every parameter with a gradient, in one foreach kernel:
what ``torch.optim.SGD(foreach=True)`` computes without momentum, minus its per-step bookkeeping
(momentum buffers, nesterov, maximize, weight decay), which costs about as much as a whole step of
the lecture's small MLP. Both derive from ``optimizer_base.Optimizer`` (torch's parameter groups and ``state_dict``
format, without ``torch.optim.Optimizer``'s import of the compiler on first use), so the loop calls
``step()`` on either and checkpoints keep either's ``state_dict`` (PlainSGD keeps no per-parameter state).

``FusedAdamW`` is ``torch.optim.AdamW(fused=True)`` (one fused kernel for every parameter's update,
~40-60 us instead of ~200 us for foreach on the CPU at the sequence presets' sizes) whose ``step()``
calls that kernel directly: torch's own ``step`` spends ~3x the kernel's time in Python (grouping the
tensors by device and dtype, flag checks) on every step, and ``_foreach_add_`` of the step counts is
a loop of one small op per parameter on the CPU (~75 us for the transformer's 54). Here the lists the kernel
takes are gathered once (``Pack``) and reused while the same parameters have a gradient and the state is
the same (``load_state_dict`` replaces it), and the step counts of the parameters updated together are
0-d views into one buffer, advanced by one ``add_``.
Same kernel, same arguments, the same ``state_dict`` as torch's fused AdamW (``step``, ``exp_avg``,
``exp_avg_sq`` per parameter; ``state_dict`` returns each ``step`` as its own tensor, so nothing in a
checkpoint shares storage), so a checkpoint written by either loads into either. Where the fused kernel does not apply (a device or
dtype it does not support) the optimizer is torch's foreach AdamW, as before.
"""

from __future__ import annotations

import operator

import torch

from charlab.config import TrainConfig
from charlab.training.optimizer_base import Optimizer

ADAMW_FLAGS = {"amsgrad": False, "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
               "fused": True, "decoupled_weight_decay": True}  # torch's AdamW(fused=True) group keys, same values


class PlainSGD(Optimizer):
    """SGD without momentum or weight decay; the learning rate is each group's ``lr``."""

    def __init__(self, params, lr: float):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None) -> None:
        for group in self.param_groups:
            live = [p for p in group["params"] if p.grad is not None]
            if live:
                torch._foreach_add_(live, [p.grad for p in live], alpha=-group["lr"])


class FusedAdamW(Optimizer):
    """torch's fused AdamW with a lean ``step`` (no closure, no AMP grad scaling, no amsgrad)."""

    def __init__(self, params, lr: float, weight_decay: float, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, **ADAMW_FLAGS})
        self._packs: dict = {}  # group index -> Pack of the parameters it updated last

    @torch.no_grad()
    def step(self, closure=None) -> None:
        if closure is not None:
            raise ValueError("FusedAdamW.step takes no closure")
        for g, group in enumerate(self.param_groups):
            if group["amsgrad"] or group["maximize"]:
                raise ValueError("FusedAdamW does not implement amsgrad or maximize; use torch.optim.AdamW")
            live = [p for p in group["params"] if p.grad is not None]
            pack = self._packs.get(g)
            if pack is None or not pack.holds(live, self.state):
                pack = self._packs[g] = Pack(live, self.state)
            beta1, beta2 = group["betas"]
            for params, exp_avgs, exp_avg_sqs, steps, clock, one in pack.buckets:
                clock.add_(one)  # (a 0-d tensor: adding the number 1 costs 2x as much)
                torch._fused_adamw_(params, [p.grad for p in params], exp_avgs, exp_avg_sqs, [], steps,
                                    amsgrad=False, lr=float(group["lr"]), beta1=beta1, beta2=beta2,
                                    weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                                    grad_scale=None, found_inf=None)

    def state_dict(self) -> dict:
        """torch's state dict, each ``step`` its own tensor (the live ones are views of one buffer)."""
        sd = super().state_dict()
        sd["state"] = {k: {**v, "step": v["step"].clone()} if "step" in v else v for k, v in sd["state"].items()}
        return sd


class Pack:
    """The parameters a group updates (those with a gradient) with their state, gathered once per
    (device, dtype) bucket: the lists ``torch._fused_adamw_`` takes, and the bucket's step counts as 0-d
    views of one ``clock`` buffer, advanced by one ``add_``. Re-made when the parameters with a gradient
    or the state (``load_state_dict`` replaces it) change; the state is initialised here lazily, as torch's
    AdamW(fused=True) does it on a parameter's first step."""

    def __init__(self, params: list, state) -> None:
        self.params, self.state = params, state
        by_kind: dict = {}  # (device, dtype) -> parameters
        for p in params:
            by_kind.setdefault((p.device, p.dtype), []).append(p)
        self.buckets = [self.bucket(ps) for ps in by_kind.values()]

    def bucket(self, params: list) -> tuple:
        states = [self.state[p] for p in params]
        for p, s in zip(params, states):
            if not s:
                s.update(step=torch.zeros((), dtype=torch.float32, device=p.device),
                         exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                         exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format))
        clock = torch.stack([s["step"].to(dtype=torch.float32) for s in states])  # (n,) the counts so far
        for i, s in enumerate(states):
            s["step"] = clock[i]  # 0-d view
        return (params, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                [s["step"] for s in states], clock, clock.new_ones(()))

    def holds(self, params: list, state) -> bool:
        """Whether this pack is for exactly ``params`` (the same objects, in order) and ``state``."""
        return (state is self.state and len(params) == len(self.params)
                and all(map(operator.is_, params, self.params)))


def fused_adamw_supported(params) -> bool:
    """Whether torch's fused AdamW kernel takes every one of ``params`` (floating point, a device with
    the kernel: the CPU, CUDA, MPS, ...)."""
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
        devices = _get_fused_kernels_supported_devices()
    except ImportError:  # an older or newer torch without the helper: the CPU and CUDA have the kernel
        devices = ["cpu", "cuda"]
    return all(p.is_floating_point() and p.device.type in devices for p in params)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> Optimizer | torch.optim.Optimizer | None:
    """The optimizer ``cfg.optimizer`` names over the trainable parameters; None for a model with
    none (fit by counting)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return None
    if cfg.optimizer == "adamw":
        if fused_adamw_supported(params):
            return FusedAdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    return PlainSGD(params, lr=cfg.lr)
