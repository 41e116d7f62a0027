"""The quantities of sequence models, as pure functions: gradients through time, gates, attention.

Two sides, as in ``quantities.py``: reductions of tensors that stay on the tensors' device (the
recorder stacks them and copies to the CPU once per sampled step), and functions of the saved plain
values (lists of floats) that the verdicts and the figures compute from the records.

Gradient through time. With a loss at every position, ``||dL/dh_t||`` is dominated at every t by the
loss at t itself (a tanh RNN at recurrent gain 0.3 and one at gain 1 both show a first/last ratio of
~5), so the ratio of those norms cannot tell a gradient that dies from one that survives. What step t
does to the gradient is measured directly instead: the state gradient it receives, ``dL/ds_t``, against
the part of ``dL/ds_{t-1}`` it sends back (``transmission``); their product over the positions of the
batch (``through_time``) is the factor by which backpropagation through the whole sequence scales a
gradient from the last position to the first. The state ``s`` is ``h`` (RNN, GRU) or ``(h, c)`` (LSTM).
"""

from __future__ import annotations

import math

import torch

GATE_HIGH = 0.97  # a sigmoid above this passes < 3% of its gradient (sigma' = s(1 - s) < 0.03)
GATE_LOW = 0.03  # the same at the closed end
TINY = 1e-30  # a factor of exactly 0 (no gradient came back at all) as a number a log can take


def gate_summary(g: torch.Tensor) -> dict:
    """Mean of sigmoid gate activations and the fractions saturated closed (< 0.03) and open (> 0.97)."""
    g = g.detach().float()
    return {"mean": g.mean(), "low": (g < GATE_LOW).float().mean(), "high": (g > GATE_HIGH).float().mean()}


def step_grad_norms(grads: list[torch.Tensor | None]) -> torch.Tensor:
    """``||g_t||`` (Frobenius over the batch) for each position's gradient; 0 where none arrived. (T,)"""
    zero = next(g for g in grads if g is not None).new_zeros(())
    return torch.stack([zero if g is None else torch.linalg.vector_norm(g.detach().float()) for g in grads])


def attention_entropy(p: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of each head's attention rows: p (B, nh, T, T), rows summing to 1. (nh,)"""
    p = p.detach().float()
    rows = -torch.special.xlogy(p, p).sum(-1)  # (B, nh, T) 0 log 0 = 0 for masked positions
    return rows.mean(dim=(0, 2))  # (nh,)


def uniform_entropy(t: int) -> float:
    """The entropy of uniform causal attention over ``t`` positions: position i sees i + 1 positions, so
    the mean of ln(i + 1) for i < t, ln(t!) / t."""
    return math.lgamma(t + 1) / t if t > 0 else 0.0


def visible_logit_std(scores: torch.Tensor) -> torch.Tensor:
    """Std of each head's attention logits over the positions the causal mask keeps: (B, nh, T, T). (nh,)"""
    t = scores.shape[-1]
    visible = torch.tril(torch.ones(t, t, dtype=torch.bool, device=scores.device))  # (T, T)
    kept = scores.detach().float()[:, :, visible]  # (B, nh, T(T+1)/2)
    return kept.transpose(0, 1).reshape(kept.shape[1], -1).std(dim=1)  # (nh,)


def head_grad_norms(grad: torch.Tensor) -> torch.Tensor:
    """``||dL/dy_head||`` of each head's output, grad (B, nh, T, hs). (nh,)"""
    g = grad.detach().float().transpose(0, 1)  # (nh, B, T, hs)
    return torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1)  # (nh,)


# from saved records -------------------------------------------------------------------------------
def joint_norms(components: list[list[float]]) -> list[float]:
    """The norm of a state made of several tensors (the LSTM's h and c), position by position."""
    return [math.sqrt(sum(c[t] ** 2 for c in components)) for t in range(min(map(len, components)))]


def transmission(received: list[float], sent: list[float]) -> list[float]:
    """Per step t >= 1: ``||dL/ds_{t-1} sent back by step t|| / ||dL/ds_t||``, the factor one step of
    backpropagation through time applies (steps whose state got no gradient are left out)."""
    return [sent[t] / received[t] for t in range(1, min(len(received), len(sent))) if received[t] > 0]


def through_time(received: list[float], sent: list[float]) -> float | None:
    """The product of ``transmission`` over the positions: last position to first. None with < 2 positions."""
    factors = transmission(received, sent)
    if not factors:
        return None
    if min(factors) <= 0:
        return 0.0
    return math.exp(math.fsum(math.log(f) for f in factors))


def first_last(norms: list[float]) -> float | None:
    """``||dL/ds_0|| / ||dL/ds_{T-1}||``: the gradient norm at the first position over the last's."""
    return norms[0] / norms[-1] if len(norms) > 1 and norms[-1] > 0 else None
