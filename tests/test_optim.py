"""``training.optim``: ``FusedAdamW`` is torch's fused AdamW, step for step and state for state."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch

from charlab.config import TrainConfig
from charlab.training.optim import FusedAdamW, make_optimizer


def params(seed: int = 0) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(5, 3, generator=gen)), torch.nn.Parameter(torch.randn(3, generator=gen)),
            torch.nn.Parameter(torch.randn(2, 2, generator=gen))]


def test_fused_adamw_equals_torch_fused_adamw_bit_for_bit():
    """The same kernel with the same arguments: equal weights and state after steps where one parameter
    has no gradient (its step count stays behind) and after a state-dict round trip mid-way."""
    ours, theirs = params(), params()
    mine = FusedAdamW(ours, lr=1e-2, weight_decay=0.1)
    torch_opt = torch.optim.AdamW(theirs, lr=1e-2, weight_decay=0.1, fused=True)
    gen = torch.Generator().manual_seed(1)
    for step in range(6):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            grad = torch.randn(a.shape, generator=gen)
            a.grad = b.grad = None if (step == 3 and i == 1) else grad
            if b.grad is not None:
                b.grad = grad.clone()
        mine.step()
        torch_opt.step()
        if step == 4:
            mine.load_state_dict(copy.deepcopy(mine.state_dict()))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    mine_sd, torch_sd = mine.state_dict(), torch_opt.state_dict()
    for i in range(3):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(mine_sd["state"][i][key], torch_sd["state"][i][key]), (i, key)
    assert [float(mine_sd["state"][i]["step"]) for i in range(3)] == [6.0, 5.0, 6.0]


def test_state_dict_steps_share_no_storage_and_load_into_torch_adamw():
    """The live step counts are views of one buffer; a checkpoint (safetensors refuses shared storage)
    gets each as its own tensor, and torch's AdamW takes the state dict as its own."""
    ps = params()
    opt = FusedAdamW(ps, lr=1e-2, weight_decay=0.0)
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    opt.step()
    steps = [v["step"] for v in opt.state_dict()["state"].values()]
    assert len({s.untyped_storage().data_ptr() for s in steps}) == len(steps)
    other = torch.optim.AdamW(params(), lr=1e-2, fused=True)
    other.load_state_dict(opt.state_dict())
    assert float(other.state_dict()["state"][0]["step"]) == 2.0


def test_make_optimizer_takes_the_fused_adamw_for_float_parameters():
    model = torch.nn.Linear(3, 2)
    assert isinstance(make_optimizer(model, TrainConfig(optimizer="adamw", lr=0.01, weight_decay=0.01)), FusedAdamW)


def test_torch_adamw_state_dict_loads_into_fused_adamw_and_continues_equal():
    """A checkpoint written by torch's AdamW resumes in FusedAdamW: the next steps equal torch's."""
    mine, theirs = params(), params()
    torch_opt = torch.optim.AdamW(theirs, lr=1e-2, weight_decay=0.1, fused=True)
    for step in range(3):
        for p in theirs:
            p.grad = torch.full_like(p, 0.1 * (step + 1))
        torch_opt.step()
    with torch.no_grad():
        for a, b in zip(mine, theirs):
            a.copy_(b)
    opt = FusedAdamW(mine, lr=1e-2, weight_decay=0.1)
    opt.load_state_dict(copy.deepcopy(torch_opt.state_dict()))
    for step in range(2):
        for a, b in zip(mine, theirs):
            a.grad = torch.full_like(a, -0.2 * (step + 1))
            b.grad = a.grad.clone()
        opt.step()
        torch_opt.step()
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs))
    assert opt.state_dict()["param_groups"] == torch_opt.state_dict()["param_groups"]


def test_a_load_with_other_groups_is_refused():
    opt = FusedAdamW(params(), lr=1e-2, weight_decay=0.0)
    other = FusedAdamW(params()[:2], lr=1e-2, weight_decay=0.0)
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict(other.state_dict())


def test_the_optimizers_do_not_import_the_compiler():
    """``torch.optim.Optimizer`` imports ``torch._dynamo`` on first use (1-2 s of start-up); charlab's
    optimizers train and checkpoint without it."""
    code = ("import sys, torch\n"
            "from charlab.training.optim import FusedAdamW, PlainSGD\n"
            "w = torch.nn.Parameter(torch.ones(3))\n"
            "for opt in (FusedAdamW([w], lr=0.1, weight_decay=0.0), PlainSGD([w], lr=0.1)):\n"
            "    w.grad = torch.ones(3); opt.step(); opt.zero_grad(); opt.load_state_dict(opt.state_dict())\n"
            "print('torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
