"""The hand-derived backward pass of the MLP family (the lecture series' "backprop ninja" part) and
its SGD steps, plain functions of tensors that ``torch.compile`` can unroll into one graph.

At the lecture's batch of 32 a step is a few microseconds of arithmetic buried under per-operation
overhead: Python, the dispatcher, autograd's graph, the optimizer's bookkeeping. Writing the
gradients out by hand removes autograd; compiling ``UNROLL_STEPS`` steps into one graph removes the
rest, since the compiled code runs them back to back without returning to Python. How much each
saves is measured by ``charlab bench`` (``benchmarks/run.py``; README, Speed). The training strategies that
use it are in ``steps.py``.

The math is the autograd path's (``steps.AutogradStep`` with SGD), derived by hand:

- cross-entropy: ``dlogits = (softmax(logits) - onehot(y)) / B``;
- Linear ``out = x @ W.T + b``: ``dW = dout.T @ x``, ``db = dout.sum(0)``, ``dx = dout @ W``;
- tanh ``h = tanh(a)``: ``da = (1 - h**2) * dh``;
- BatchNorm (biased batch variance, as ``batchnorm.py``): with ``xhat = (a - mean) * istd``,
  ``dgamma = (dy * xhat).sum(0)``, ``dbeta = dy.sum(0)`` and
  ``da = gamma * istd / B * (B * dy - dbeta - xhat * dgamma)``;
- Embedding: ``dC`` scatter-adds the rows of ``demb`` at the looked-up ids;
- SGD: ``p <- p - lr * dp``; BatchNorm running statistics blend in as ``batchnorm.py`` does.

The losses match the autograd path to float rounding (``tests/test_speed_paths.py``). The batches
come from the same generator in the same order, so a seed gives the same run on either path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from charlab.nn.batchnorm import BatchNorm1d
from charlab.errors import CharlabError
from charlab.nn.layers import Embedding, FlattenConsecutive, Linear, Tanh

UNROLL_STEPS = 10  # steps per compiled graph: long enough to leave Python rarely, short enough to compile fast


@dataclass(frozen=True)
class Hidden:
    """One hidden block: Linear (with a bias only without BatchNorm) -> BatchNorm? -> tanh?

    Plain values only, so that ``torch.compile`` treats the structure as constants."""

    eps: float | None  # the BatchNorm's epsilon, None without BatchNorm
    tanh: bool


def parse_mlp(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[Hidden], list[BatchNorm1d]]:
    """Parameters in update order, the hidden blocks and the BatchNorms, or CharlabError if the model
    is not Embedding -> FlattenConsecutive -> [Linear -> BatchNorm1d? -> Tanh?]* -> Linear."""
    layers = list(getattr(model, "layers", []))
    unsupported = CharlabError(
        f"--fast-path supports the MLP (Embedding, Linear, BatchNorm1d, Tanh), not {type(model).__name__}; "
        "use --fast-path off")
    if len(layers) < 3 or not isinstance(layers[0], Embedding) or not isinstance(layers[1], FlattenConsecutive):
        raise unsupported
    params, blocks, norms, i = [layers[0].weight], [], [], 2
    while i < len(layers) - 1:
        linear, norm, tanh = layers[i], None, False
        if not isinstance(linear, Linear):
            raise unsupported
        params += [p for p in (linear.weight, linear.bias) if p is not None]
        i += 1
        if i < len(layers) - 1 and isinstance(layers[i], BatchNorm1d):
            norm = layers[i]
            if norm.momentum is None or not norm.affine or not norm.track_running_stats:
                raise CharlabError("--fast-path needs BatchNorm with a momentum, affine and running stats; "
                                   "use --fast-path off")
            params += [norm.weight, norm.bias]
            norms.append(norm)
            i += 1
        if i < len(layers) - 1 and isinstance(layers[i], Tanh):
            tanh, i = True, i + 1
        blocks.append(Hidden(None if norm is None else norm.eps, tanh))
    output = layers[-1]
    if not isinstance(output, Linear) or output.bias is None:
        raise unsupported
    params += [output.weight, output.bias]
    return params, blocks, norms


def _forward_backward(params, blocks, stats, x, y):
    """Loss, gradients (same order as params) and per-norm (mean, unbiased var) for one batch."""
    emb_w, rest = params[0], list(params[1:])
    n = x.shape[0]
    h = emb_w.index_select(0, x.reshape(-1)).view(n, -1)  # (B, block*n_embd)
    saved = []
    for block in blocks:
        w = rest.pop(0)
        a = h @ w.T  # (B, H)
        b = None if block.eps is not None else rest.pop(0)
        if b is not None:
            a = a + b
        xhat = gamma = istd = None
        if block.eps is not None:
            gamma, beta = rest.pop(0), rest.pop(0)
            mean = a.mean(0)  # (H,)
            centred = a - mean  # (B, H)
            var = (centred * centred).mean(0)  # (H,) biased; 10x faster than var() on CPU
            istd = torch.rsqrt(var + block.eps)  # (H,)
            xhat = centred * istd  # (B, H)
            a = xhat * gamma + beta
            stats.append((mean, var * (n / (n - 1))))
        out = torch.tanh(a) if block.tanh else a  # (B, H)
        saved.append((h, w, b, gamma, istd, xhat, out))
        h = out
    w_out, b_out = rest
    logits = h @ w_out.T + b_out  # (B, V)
    logp = torch.log_softmax(logits, dim=1)  # (B, V)
    loss = -logp.gather(1, y.view(-1, 1)).mean()
    dout = (logp.exp() - F.one_hot(y, logits.shape[1]).to(logp.dtype)) / n  # (B, V)
    grads = [dout.T @ h, dout.sum(0)]
    dh = dout @ w_out  # (B, H)
    for block, (h_in, w, b, gamma, istd, xhat, out) in zip(reversed(blocks), reversed(saved)):
        da = (1 - out * out) * dh if block.tanh else dh  # (B, H)
        block_grads = []
        if block.eps is not None:
            dgamma, dbeta = (da * xhat).sum(0), da.sum(0)  # (H,), (H,)
            da = gamma * istd / n * (n * da - dbeta - xhat * dgamma)  # (B, H)
            block_grads = [dgamma, dbeta]
        if b is not None:
            block_grads = [da.sum(0)]
        grads = [da.T @ h_in, *block_grads, *grads]
        dh = da @ w  # (B, fan_in)
    d_emb = torch.zeros_like(emb_w).index_add(0, x.reshape(-1), dh.reshape(-1, emb_w.shape[1]))
    return loss, [d_emb, *grads]


def _update_buffers(buffers, stats, momenta):
    """BatchNorm running statistics, blended as ``batchnorm.py`` does: ``lerp(running, batch, m)``."""
    batch = [s for pair in stats for s in pair]  # mean, unbiased var per norm
    return [torch.lerp(buf, stat, m) for buf, stat, m in zip(buffers, batch, [m for m in momenta for _ in "mv"])]


def sgd_steps(params, buffers, blocks, momenta, x, y, lrs):
    """``len(lrs)`` SGD steps on batches ``x`` (K, B, T), ``y`` (K, B); returns the K losses and the
    new parameters and BatchNorm buffers (running mean, running var per norm)."""
    losses = []
    for k in range(lrs.shape[0]):
        stats = []
        loss, grads = _forward_backward(params, blocks, stats, x[k], y[k])
        params = [p - lrs[k] * g for p, g in zip(params, grads)]
        buffers = _update_buffers(buffers, stats, momenta)
        losses.append(loss)
    return torch.stack(losses), params, buffers


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

    ``gradients`` (eager) sets each parameter's ``.grad`` and leaves the update to the trainer's
    optimizer, so every optimizer, clipping and its checkpointed state work as on the autograd
    path. ``steps`` runs several SGD steps, a full chunk of ``unroll`` compiled when ``compile``.
    """

    def __init__(self, model: torch.nn.Module, compile: bool = False, unroll: int | None = None):
        self.unroll = unroll or UNROLL_STEPS
        self.params, self.blocks, self.norms = parse_mlp(model)
        self.buffers = [buf for norm in self.norms for buf in (norm.running_mean, norm.running_var)]
        self.momenta = [norm.momentum for norm in self.norms]
        self.compiled = torch.compile(sgd_steps, fullgraph=True, dynamic=False) if compile else None

    @torch.no_grad()
    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Set ``.grad`` of every parameter for the batch ``x`` (B, T), ``y`` (B,); returns the loss."""
        stats = []
        loss, grads = _forward_backward([p.detach() for p in self.params], self.blocks, stats, x, y)
        for p, g in zip(self.params, grads):
            p.grad = g
        self._write_back([], [], _update_buffers(self.buffers, stats, self.momenta), 1)
        return loss

    def _write_back(self, params, new_params, new_buffers, steps: int) -> None:
        for old, new in ((params, new_params), (self.buffers, new_buffers)):
            if old:
                torch._foreach_copy_(old, new)
        for norm in self.norms:
            norm.num_batches_tracked.add_(steps)

    @torch.no_grad()
    def steps(self, x: torch.Tensor, y: torch.Tensor, lrs: torch.Tensor) -> torch.Tensor:
        """SGD on ``x`` (K, B, T), ``y`` (K, B) with learning rates ``lrs`` (K,); returns the K losses.
        A full chunk of ``unroll`` steps runs compiled, a shorter one (before an evaluation) eagerly."""
        full = self.compiled is not None and lrs.shape[0] == self.unroll
        run = self.compiled if full else sgd_steps
        losses, params, buffers = run([p.detach() for p in self.params], list(self.buffers), self.blocks,
                                      self.momenta, x, y, lrs)
        self._write_back([p.detach() for p in self.params], params, buffers, lrs.shape[0])
        return losses  # (K,)
