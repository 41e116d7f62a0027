"""The hand-derived backward pass of the window models (the lecture series' "backprop ninja" part)
and its SGD steps, plain functions of tensors that ``torch.compile`` can unroll into one graph.

At the lecture's batch of 32 a step is a few microseconds of arithmetic buried under per-operation
overhead: Python, the dispatcher, autograd's graph, the optimizer's bookkeeping. Writing the
gradients out by hand removes autograd and keeps the number of operations small (each layer's
forward and backward is one ATen kernel where PyTorch has one: ``native_batch_norm`` and its
backward, ``tanh_backward``, ``nll_loss`` and ``_log_softmax_backward_data``, ``addmm``); the SGD
update is one ``_foreach_add_``. Compiling ``UNROLL_STEPS`` steps into one graph removes the rest,
since the compiled code runs them back to back without returning to Python. How much each saves is
measured by ``charlab bench`` (README, Speed). The strategies that use it are in ``steps.py``; the
compilation (on-disk cache, background worker, fallback) in ``compiled.py``.

The models: ``Embedding -> [FlattenConsecutive(n)? -> Linear -> BatchNorm1d? -> Tanh?]* ->
FlattenConsecutive? -> Linear`` with the flattening factors multiplying to the window: the MLP
(one FlattenConsecutive of the whole window) and the WaveNet (pairs fused level by level, BatchNorm
over (N, L, C)). Activations are kept as rows (B*L, C): fusing ``n`` consecutive positions of
(B, L, C) is then ``reshape(-1, n*C)`` of the rows (the same memory), its backward the inverse
reshape, a Linear over the last dimension is one matrix multiply, and a BatchNorm over (N, L) is a
BatchNorm over the rows.

The math is the autograd path's (``steps.AutogradStep``), derived by hand:

- cross-entropy: ``dlogits = (softmax(logits) - onehot(y)) / B``;
- Linear ``out = x @ W.T + b``: ``dW = dout.T @ x``, ``db = dout.sum(0)``, ``dx = dout @ W``;
- tanh ``h = tanh(a)``: ``da = (1 - h**2) * dh``;
- BatchNorm (biased batch variance, as ``batchnorm.py``): with ``xhat = (a - mean) * istd``,
  ``dgamma = (dy * xhat).sum(0)``, ``dbeta = dy.sum(0)`` and
  ``da = gamma * istd / N * (N * dy - dbeta - xhat * dgamma)`` over the N rows; the running
  statistics blend in the batch mean and unbiased variance with the momentum, as ``batchnorm.py``;
- Embedding: ``dC`` scatter-adds the rows of ``demb`` at the looked-up ids;
- SGD: ``p <- p - lr * dp``.

The losses match the autograd path to float rounding (``tests/test_speed_paths.py``). The batches
come from the same generator in the same order, so a seed gives the same run on either path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from charlab.data.examples import IGNORE_INDEX
from charlab.errors import CharlabError
from charlab.nn.batchnorm import BatchNorm1d
from charlab.nn.layers import Embedding, FlattenConsecutive, Linear, Tanh

aten = torch.ops.aten
MEAN = 1  # ATen's reduction code for "mean" (nll_loss): the loss is the batch mean, as F.cross_entropy
# Steps per compiled graph. Measured on the 2-core machine, mlp-bn, one thread, one process (busy:
# relative figures), with inductor's Python wrapper: 1 : 2 : 4 : 8 steps a graph ran 1.00 : 1.32 :
# 1.41 : 1.51 as fast, after cold compiles of ~14, ~27, ~30-65 and ~156 s. With the C++ wrapper
# (``compiled.INDUCTOR_OPTIONS``) 1 : 2 : 4 ran ~7,000 : ~11,500 : ~13,500 steps/s after cold
# compiles of ~16, ~17 and ~20 s (one compile thread), against ~5,500 for the eager steps.
UNROLL_STEPS = 4


@dataclass(frozen=True)
class Hidden:
    """One hidden block: FlattenConsecutive(flatten)? -> Linear (bias?) -> BatchNorm? -> tanh?

    Plain values only, so that ``torch.compile`` treats the structure as constants."""

    flatten: int  # consecutive positions fused before the Linear (1: none)
    bias: bool
    eps: float | None  # the BatchNorm's epsilon, None without BatchNorm
    momentum: float | None  # the BatchNorm's momentum
    tanh: bool


@dataclass(frozen=True)
class Plan:
    blocks: tuple[Hidden, ...]
    out_flatten: int  # positions fused before the output Linear (1: none)


def unsupported(model: torch.nn.Module) -> CharlabError:
    return CharlabError(
        f"--fast-path supports the window models (Embedding, FlattenConsecutive, Linear, BatchNorm1d, Tanh), "
        f"not {type(model).__name__}; use --fast-path off")


def parse_mlp(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], Plan, list[BatchNorm1d]]:
    """Parameters in update order, the plan and the BatchNorms, or CharlabError if the model is not
    Embedding -> [FlattenConsecutive? -> Linear -> BatchNorm1d? -> Tanh?]* -> FlattenConsecutive? ->
    Linear, with flattening factors that multiply to the model's window."""
    layers = list(getattr(model, "layers", []))
    if len(layers) < 2 or not isinstance(layers[0], Embedding):
        raise unsupported(model)
    params, blocks, norms, fused, pending, i = [layers[0].weight], [], [], 1, 1, 1
    while i < len(layers):
        layer = layers[i]
        i += 1
        if isinstance(layer, FlattenConsecutive):
            pending, fused = pending * layer.n, fused * layer.n
            continue
        if not isinstance(layer, Linear):
            raise unsupported(model)
        params += [p for p in (layer.weight, layer.bias) if p is not None]
        if i == len(layers):  # the output layer
            if layer.bias is None or fused != getattr(model, "block_size", None):
                raise unsupported(model)
            return params, Plan(tuple(blocks), pending), norms
        norm = None
        if isinstance(layers[i], BatchNorm1d):
            norm = layers[i]
            if norm.momentum is None or not norm.affine or not norm.track_running_stats:
                raise CharlabError("--fast-path needs BatchNorm with a momentum, affine and running stats; "
                                   "use --fast-path off")
            params += [norm.weight, norm.bias]
            norms.append(norm)
            i += 1
        tanh = i < len(layers) and isinstance(layers[i], Tanh)
        i += tanh
        blocks.append(Hidden(pending, layer.bias is not None, None if norm is None else norm.eps,
                             None if norm is None else norm.momentum, tanh))
        pending = 1
    raise unsupported(model)  # no output Linear


def forward_backward(params, buffers, plan: Plan, x, y):
    """Loss and gradients (in the order of ``params``) of one batch ``x`` (B, T), ``y`` (B,); the
    BatchNorm running statistics (``buffers``: mean, var per norm) are updated in place."""
    emb_w, rest, stats = params[0], iter(params[1:]), iter(buffers)
    ids = x.reshape(-1)  # (B*T,)
    h = emb_w.index_select(0, ids)  # (B*T, E): rows of (B, T, E)
    saved = []
    for block in plan.blocks:
        if block.flatten > 1:
            h = h.reshape(-1, h.shape[1] * block.flatten)  # (B*L/n, n*C): n consecutive positions fused
        w = next(rest)
        a = torch.addmm(next(rest), h, w.t()) if block.bias else torch.mm(h, w.t())  # (N, H)
        norm = None
        if block.eps is not None:
            gamma, beta, running_mean, running_var = next(rest), next(rest), next(stats), next(stats)
            pre = a
            a, mean, istd = aten.native_batch_norm(pre, gamma, beta, running_mean, running_var, True,
                                                   block.momentum, block.eps)  # (N, H), stats updated
            norm = (pre, gamma, running_mean, running_var, mean, istd)
        out = torch.tanh(a) if block.tanh else a  # (N, H)
        saved.append((h, w, norm, out))
        h = out
    if plan.out_flatten > 1:
        h = h.reshape(-1, h.shape[1] * plan.out_flatten)  # (B, C)
    w_out, b_out = next(rest), next(rest)
    logits = torch.addmm(b_out, h, w_out.t())  # (B, V)
    logp = torch.log_softmax(logits, 1)  # (B, V)
    loss, total = aten.nll_loss_forward(logp, y, None, MEAN, IGNORE_INDEX)
    dlogp = aten.nll_loss_backward(logp.new_ones(()), logp, y, None, MEAN, IGNORE_INDEX, total)  # (B, V)
    dout = aten._log_softmax_backward_data(dlogp, logp, 1, logp.dtype)  # (B, V): (softmax - onehot) / B
    grads = [torch.mm(dout.t(), h), dout.sum(0)]
    dh = torch.mm(dout, w_out)  # (B, C)
    if plan.out_flatten > 1:
        dh = dh.reshape(-1, dh.shape[1] // plan.out_flatten)
    for block, (h_in, w, norm, out) in zip(reversed(plan.blocks), reversed(saved)):
        da = aten.tanh_backward(dh, out) if block.tanh else dh  # (N, H)
        block_grads = []
        if norm is not None:
            pre, gamma, running_mean, running_var, mean, istd = norm
            da, dgamma, dbeta = aten.native_batch_norm_backward(da, pre, gamma, running_mean, running_var, mean,
                                                                istd, True, block.eps, [True, True, True])
            block_grads = [dgamma, dbeta]
        if block.bias:
            block_grads = [da.sum(0), *block_grads]
        grads = [torch.mm(da.t(), h_in), *block_grads, *grads]
        dh = torch.mm(da, w)  # (N, fan_in)
        if block.flatten > 1:
            dh = dh.reshape(-1, dh.shape[1] // block.flatten)  # back to unfused rows
    d_emb = dh.new_zeros(emb_w.shape).index_add_(0, ids, dh)  # (V, E): 5x faster than embedding_dense_backward at batch 256
    return loss, [d_emb, *grads]


def sgd_step(params, buffers, plan: Plan, x, y, lr):
    """One SGD step in place on a batch ``x`` (B, T), ``y`` (B,): the update of ``torch.optim.SGD``
    without momentum (``_foreach_add_`` with ``alpha=-lr``); returns the loss."""
    loss, grads = forward_backward(params, buffers, plan, x, y)
    torch._foreach_add_(params, grads, alpha=-lr)
    return loss


def sgd_steps(params, buffers, plan: Plan, x, y, lrs):
    """``len(lrs)`` SGD steps in place on batches ``x`` (K, B, T), ``y`` (K, B); the K losses."""
    return torch.stack([sgd_step(params, buffers, plan, x[k], y[k], lrs[k]) for k in range(lrs.shape[0])])  # (K,)


def unsupported_reason(model: torch.nn.Module) -> str | None:
    """Why the hand-derived step cannot train ``model`` (None when it can)."""
    try:
        _, _, norms = parse_mlp(model)
    except CharlabError as err:
        return str(err)
    if any(norm.stats_reducer is not None for norm in norms):
        return ("--fast-path computes single-process BatchNorm statistics; use --fast-path off "
                "with synchronised BatchNorm")
    return None


class HandBackward:
    """The model's parameters and BatchNorm buffers, trained in place by the hand-derived pass.

    ``gradients`` sets each parameter's ``.grad`` and leaves the update to the trainer's optimizer,
    so every optimizer, clipping and its checkpointed state work as on the autograd path; ``sgd``
    takes one whole SGD step; ``chunk`` runs ``sgd_steps`` (compiled by ``compiled.py``, or eager).
    """

    def __init__(self, model: torch.nn.Module, unroll: int | None = None):
        self.unroll = unroll or UNROLL_STEPS
        params, self.plan, self.norms = parse_mlp(model)
        self.params = [p.detach() for p in params]  # the same storage: updates land in the model
        self.leaves = params
        self.buffers = [buf for norm in self.norms for buf in (norm.running_mean, norm.running_var)]
        self.counters = [norm.num_batches_tracked for norm in self.norms]

    def _counted(self, steps: int) -> None:
        if self.counters:
            torch._foreach_add_(self.counters, steps)

    @torch.no_grad()
    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Set ``.grad`` of every parameter for the batch ``x`` (B, T), ``y`` (B,); returns the loss."""
        loss, grads = forward_backward(self.params, self.buffers, self.plan, x, y)
        for p, g in zip(self.leaves, grads):
            p.grad = g
        self._counted(1)
        return loss

    @torch.no_grad()
    def sgd(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        """One SGD step at ``lr`` on ``x`` (B, T), ``y`` (B,); its loss."""
        loss = sgd_step(self.params, self.buffers, self.plan, x, y, lr)
        self._counted(1)
        return loss

    @torch.no_grad()
    def chunk(self, run, x: torch.Tensor, y: torch.Tensor, lrs: torch.Tensor) -> torch.Tensor:
        """``run`` (``sgd_steps`` or its compiled form) on ``x`` (K, B, T), ``y`` (K, B) at ``lrs`` (K,)."""
        losses = run(self.params, self.buffers, self.plan, x, y, lrs)
        self._counted(lrs.shape[0])
        return losses  # (K,)

    def example_inputs(self, batch_size: int, block_size: int) -> dict:
        """What the compile worker needs to build inputs like ours (``compiled.py``)."""
        return {"params": [[list(p.shape), str(p.dtype)] for p in self.params],
                "buffers": [[list(b.shape), str(b.dtype)] for b in self.buffers],
                "plan": {"blocks": [vars(b) for b in self.plan.blocks], "out_flatten": self.plan.out_flatten},
                "batch_size": batch_size, "block_size": block_size, "unroll": self.unroll,
                "vocab": self.params[0].shape[0]}
