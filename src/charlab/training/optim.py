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
a loop of one small op per parameter on the CPU (~75 us for the transformer's 54). Here the step counts
of the parameters updated together are 0-d views into one buffer, advanced by one ``add_`` (re-packed
when the set of parameters with a gradient or the state changes, e.g. after ``load_state_dict``).
Same kernel, same arguments, the same ``state_dict`` as torch's fused AdamW (``step``, ``exp_avg``,
``exp_avg_sq`` per parameter; ``state_dict`` returns each ``step`` as its own tensor, so nothing in a
checkpoint shares storage), so a checkpoint written by either loads into either. Where the fused kernel does not apply (a device or
dtype it does not support) the optimizer is torch's foreach AdamW, as before.
"""

from __future__ import annotations

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
        self._clocks: dict = {}  # (group, device, dtype) -> (params, step buffer (n,)) packed together

    @torch.no_grad()
    def step(self, closure=None) -> None:
        if closure is not None:
            raise ValueError("FusedAdamW.step takes no closure")
        for g, group in enumerate(self.param_groups):
            if group["amsgrad"] or group["maximize"]:
                raise ValueError("FusedAdamW does not implement amsgrad or maximize; use torch.optim.AdamW")
            lists: dict = {}  # (device, dtype) -> [params, grads, exp_avgs, exp_avg_sqs, steps]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # lazy initialisation, as torch's AdamW(fused=True) does it
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                into = lists.get((p.device, p.dtype))
                if into is None:
                    into = lists[(p.device, p.dtype)] = ([], [], [], [], [])
                for out, value in zip(into, (p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])):
                    out.append(value)
            beta1, beta2 = group["betas"]
            for (device, dtype), (params, grads, exp_avgs, exp_avg_sqs, steps) in lists.items():
                self._advance(steps, (g, device, dtype), params)
                torch._fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False,
                                    lr=float(group["lr"]), beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                                    eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)

    def _advance(self, steps: list, key, params: list) -> None:
        """Add 1 to every step count in ``steps`` (in place; the list is updated when re-packed)."""
        packed = self._clocks.get(key)
        if packed is not None:
            base, size = packed[1].data_ptr(), packed[1].element_size()
        if packed is None or len(packed[0]) != len(params) or any(a is not b for a, b in zip(packed[0], params)) \
                or any(s.data_ptr() != base + i * size for i, s in enumerate(steps)):
            buffer = torch.stack([s.to(dtype=torch.float32) for s in steps])  # (n,) the counts so far
            for i, p in enumerate(params):
                steps[i] = self.state[p]["step"] = buffer[i]  # 0-d view
            self._clocks[key] = packed = (list(params), buffer)
        packed[1].add_(1)

    def state_dict(self) -> dict:
        """torch's state dict, each ``step`` its own tensor (the live ones are views of one buffer)."""
        sd = super().state_dict()
        sd["state"] = {k: {**v, "step": v["step"].clone()} if "step" in v else v for k, v in sd["state"].items()}
        return sd


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
