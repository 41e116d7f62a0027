"""The recurrent cells of ``recurrent.py`` run over a whole sequence at once: the fast path.

Same parameters, same math as stepping the hand-written cell (the reference; the tests compare the two in
float64, forward and gradients, with recurrent dropout), computed in fewer operations:

- the input's share of every gate, ``x_t @ W_x + b`` for all positions, is one matmul ``(T*B, E) @ (E, kH)``
  before the loop (each gate Linear over ``[x, h]`` is split into its ``x`` and ``h`` columns); the loop
  only does ``h_{t-1} @ W_h`` plus the gate arithmetic, in place into preallocated (T, B, .) buffers;
- the backward pass through time is written out by hand (a ``torch.autograd.Function``): the loop runs
  without autograd bookkeeping, the factors that do not depend on the incoming gradient are computed for
  all positions at once, and the recurrent weight's gradient is one matmul over all positions.

Layout inside is time-major, (T, B, .), so that each step's slice is contiguous. ``mask`` is the (B, H)
recurrent-dropout mask (or None): it scales ``h_{t-1}`` where it enters the gates, never where it is carried.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from charlab.nn.recurrent import GRUCell, LSTMCell, RNNCell


def _gate_inputs(mask: torch.Tensor | None, hs: torch.Tensor) -> torch.Tensor:
    """h_{t-1} as the gates read it for every step: (T, B, H) (a view of ``hs`` without a mask)."""
    return hs[:-1] if mask is None else hs[:-1] * mask


class _RNNSequence(torch.autograd.Function):
    """h_t = tanh(px_t + (h_{t-1} * m) @ W_h^T) for t = 0..T-1; returns (T, B, H)."""

    @staticmethod
    def forward(ctx, px, h0, w_h, mask):
        steps, batch, hidden = px.shape
        w_ht = w_h.t()  # (H, H)
        hs = px.new_empty(steps + 1, batch, hidden)  # (T+1, B, H) h_{-1} .. h_{T-1}
        hs[0] = h0
        hin = px.new_empty(batch, hidden) if mask is not None else None
        for t in range(steps):
            h = hs[t] if mask is None else torch.mul(hs[t], mask, out=hin)  # (B, H)
            torch.addmm(px[t], h, w_ht, out=hs[t + 1]).tanh_()  # (B, H)
        ctx.save_for_backward(hs, w_h, mask)
        return hs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        hs, w_h, mask = ctx.saved_tensors
        steps = grad_out.shape[0]
        slope = 1 - hs[1:] * hs[1:]  # (T, B, H) tanh'
        da = grad_out * slope  # (T, B, H) dL/da_t, the recurrent part added below
        carry = None
        for t in range(steps - 1, -1, -1):
            if carry is not None:
                da[t].addcmul_(carry, slope[t])  # (B, H)
            carry = da[t] @ w_h  # (B, H) dL/d(h_{t-1} as the gates read it)
            if mask is not None:
                carry = carry * mask
        hin = _gate_inputs(mask, hs)  # (T, B, H)
        grad_w = da.flatten(0, 1).t() @ hin.flatten(0, 1)  # (H, H)
        return da, carry, grad_w, None


class _LSTMSequence(torch.autograd.Function):
    """torch's LSTM order i, f, g, o; c_t = f*c + i*g, h_t = o*tanh(c_t); returns h (T, B, H)."""

    @staticmethod
    def forward(ctx, px, h0, c0, w_h, mask):
        steps, batch, width = px.shape
        hidden = width // 4
        w_ht = w_h.t()  # (H, 4H)
        acts = torch.empty_like(px)  # (T, B, 4H) i, f, g, o after their nonlinearities
        hs = px.new_empty(steps + 1, batch, hidden)  # (T+1, B, H)
        cs = px.new_empty(steps + 1, batch, hidden)  # (T+1, B, H)
        tcs = px.new_empty(steps, batch, hidden)  # (T, B, H) tanh(c_t)
        hs[0], cs[0] = h0, c0
        hin = px.new_empty(batch, hidden) if mask is not None else None
        for t in range(steps):
            h = hs[t] if mask is None else torch.mul(hs[t], mask, out=hin)  # (B, H)
            a = torch.addmm(px[t], h, w_ht, out=acts[t])  # (B, 4H)
            a[:, :2 * hidden].sigmoid_()
            a[:, 2 * hidden:3 * hidden].tanh_()
            a[:, 3 * hidden:].sigmoid_()
            i, f, g, o = a.split(hidden, dim=1)
            c = torch.mul(f, cs[t], out=cs[t + 1]).addcmul_(i, g)  # (B, H)
            torch.mul(o, torch.tanh(c, out=tcs[t]), out=hs[t + 1])  # (B, H)
        ctx.save_for_backward(acts, hs, cs, tcs, w_h, mask)
        return hs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        acts, hs, cs, tcs, w_h, mask = ctx.saved_tensors
        steps, batch, width = acts.shape
        hidden = width // 4
        i, f, g, o = acts.split(hidden, dim=2)  # each (T, B, H)
        dc_dh = o * (1 - tcs * tcs)  # (T, B, H) dc_t/dh_t along h_t = o * tanh(c_t)
        factors = torch.empty_like(acts)  # (T, B, 4H) dL/d(pre-activation) = [dc, dc, dc, dh] * factors
        fi, ff, fg, fo = factors.split(hidden, dim=2)
        torch.mul(g, i * (1 - i), out=fi)
        torch.mul(cs[:-1], f * (1 - f), out=ff)
        torch.mul(i, 1 - g * g, out=fg)
        torch.mul(tcs, o * (1 - o), out=fo)
        grad_pre = torch.empty_like(acts)  # (T, B, 4H)
        carry_h, dc = None, None
        for t in range(steps - 1, -1, -1):
            dh = grad_out[t] if carry_h is None else grad_out[t] + carry_h  # (B, H)
            dc = dh * dc_dh[t] if dc is None else torch.addcmul(dc * f[t + 1], dh, dc_dh[t])  # (B, H)
            out = grad_pre[t].view(batch, 4, hidden)
            torch.mul(factors[t].view(batch, 4, hidden)[:, :3], dc.unsqueeze(1), out=out[:, :3])
            torch.mul(fo[t], dh, out=out[:, 3])
            carry_h = grad_pre[t] @ w_h  # (B, H)
            if mask is not None:
                carry_h = carry_h * mask
        hin = _gate_inputs(mask, hs)  # (T, B, H)
        grad_w = grad_pre.flatten(0, 1).t() @ hin.flatten(0, 1)  # (4H, H)
        return grad_pre, carry_h, dc * f[0], grad_w, None


class _GRUSequence(torch.autograd.Function):
    """makemore's GRU: r, z = sigmoid(px_rz + hin @ W_rz^T); hbar = tanh(px_hbar + (r*hin) @ W_hbar^T);
    h_t = (1-z)*h_{t-1} + z*hbar, with hin = h_{t-1} * m. ``px_rz`` (T, B, 2H) and ``px_hbar`` (T, B, H)
    are the input shares of r, z and hbar."""

    @staticmethod
    def forward(ctx, px_rz, px_hbar, h0, w_rz, w_hbar, mask):
        steps, batch, hidden = px_hbar.shape
        w_rzt, w_hbart = w_rz.t(), w_hbar.t()  # (H, 2H), (H, H)
        rz = px_rz.new_empty(steps, batch, 2 * hidden)  # (T, B, 2H) r, z after the sigmoid
        hbar = px_rz.new_empty(steps, batch, hidden)  # (T, B, H) after the tanh
        hs = px_rz.new_empty(steps + 1, batch, hidden)  # (T+1, B, H)
        rh = px_rz.new_empty(steps, batch, hidden)  # (T, B, H) r * hin, what W_hbar reads
        hs[0] = h0
        hin = px_rz.new_empty(batch, hidden) if mask is not None else None
        for t in range(steps):
            h = hs[t] if mask is None else torch.mul(hs[t], mask, out=hin)  # (B, H)
            gates = torch.addmm(px_rz[t], h, w_rzt, out=rz[t]).sigmoid_()  # (B, 2H) r, z
            torch.mul(gates[:, :hidden], h, out=rh[t])
            torch.addmm(px_hbar[t], rh[t], w_hbart, out=hbar[t]).tanh_()
            torch.lerp(hs[t], hbar[t], gates[:, hidden:], out=hs[t + 1])  # h + z * (hbar - h)
        ctx.save_for_backward(rz, hbar, hs, rh, w_rz, w_hbar, mask)
        return hs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        rz, hbar, hs, rh, w_rz, w_hbar, mask = ctx.saved_tensors
        steps, batch, hidden = hbar.shape
        r, z = rz.split(hidden, dim=2)  # each (T, B, H)
        hprev = hs[:-1]  # (T, B, H)
        hin = _gate_inputs(mask, hs)  # (T, B, H)
        k_hbar = z * (1 - hbar * hbar)  # (T, B, H) dL/da_hbar = dh * k_hbar
        k_z = (hbar - hprev) * z * (1 - z)  # dL/da_z = dh * k_z
        k_r = hin * r * (1 - r)  # dL/da_r = d(r*hin) * k_r
        keep = 1 - z  # dh_t/dh_{t-1} along the carried path
        grad_rz = torch.empty_like(rz)  # (T, B, 2H)
        grad_hbar = torch.empty_like(hbar)  # (T, B, H)
        carry = None
        for t in range(steps - 1, -1, -1):
            dh = grad_out[t] if carry is None else grad_out[t] + carry  # (B, H)
            da_hbar = torch.mul(dh, k_hbar[t], out=grad_hbar[t])
            g = grad_rz[t]
            torch.mul(dh, k_z[t], out=g[:, hidden:])
            drh = da_hbar @ w_hbar  # (B, H) dL/d(r * hin)
            torch.mul(drh, k_r[t], out=g[:, :hidden])
            dhin = torch.addmm(drh * r[t], g, w_rz)  # (B, H)
            carry = torch.addcmul(dh * keep[t], dhin, mask) if mask is not None else dhin.addcmul_(dh, keep[t])
        grad_w_rz = grad_rz.flatten(0, 1).t() @ hin.flatten(0, 1)  # (2H, H)
        grad_w_hbar = grad_hbar.flatten(0, 1).t() @ rh.flatten(0, 1)  # (H, H)
        return grad_rz, grad_hbar, carry, grad_w_rz, grad_w_hbar, None


def _split(linear, n_in: int):
    """A Linear over [x, h] as its x columns, h columns and bias (autograd views of its parameters)."""
    return linear.weight[:, :n_in], linear.weight[:, n_in:], linear.bias


def _weights(cell, n_in: int):
    """The cell's input weights (kH, E) and bias (kH,) for every gate at once, and its recurrent
    weights as the sequence Function takes them."""
    if isinstance(cell, (RNNCell, LSTMCell)):
        w_x, w_h, b = _split(cell.xh_to_h if isinstance(cell, RNNCell) else cell.xh_to_gates, n_in)
        return w_x, b, (w_h,)
    if isinstance(cell, GRUCell):
        (xr, hr, br), (xz, hz, bz), (xb, hb, bb) = (_split(lin, n_in) for lin in
                                                   (cell.xh_to_r, cell.xh_to_z, cell.xh_to_hbar))
        return torch.cat([xr, xz, xb]), torch.cat([br, bz, bb]), (torch.cat([hr, hz]), hb)
    raise TypeError(f"no fast variant for {type(cell).__name__}")


def run_sequence(cell, x: torch.Tensor | None = None, mask: torch.Tensor | None = None, *,
                 idx: torch.Tensor | None = None, table: torch.Tensor | None = None) -> torch.Tensor:
    """The hidden vector h at every position, stepping ``cell`` from its learned start state: (T, B, H),
    time-major, equal (to float rounding) to calling the cell position by position.

    The input is either ``x`` (B, T, E), or ids ``idx`` (B, T) into an embedding ``table`` (V, E): then
    the input share of the gates is computed once per vocabulary entry, ``table @ W_x^T + b`` (V, kH), and
    looked up (the same dot products as embedding first; with dropout on the embeddings pass ``x``)."""
    n_in = x.shape[2] if x is not None else table.shape[1]
    w_x, b, w_h = _weights(cell, n_in)
    if x is not None:
        px = F.linear(x, w_x, b).transpose(0, 1)  # (T, B, kH) view of (B, T, kH)
    else:
        px = F.embedding(idx.t(), F.linear(table, w_x, b))  # (T, B, kH)
    batch = px.shape[1]
    if isinstance(cell, LSTMCell):
        h0, c0 = cell.initial_state(batch)
        return _LSTMSequence.apply(px, h0, c0, *w_h, mask)
    h0 = cell.start.expand(batch, -1)  # (B, H)
    if isinstance(cell, RNNCell):
        return _RNNSequence.apply(px, h0, *w_h, mask)
    hidden = h0.shape[1]
    return _GRUSequence.apply(px[..., :2 * hidden], px[..., 2 * hidden:], h0, *w_h, mask)
