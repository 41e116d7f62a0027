"""Recurrent cells written out by hand, as in makemore: one step ``state_t = cell(x_t, state_{t-1})``.

Every cell keeps a learned starting state (makemore's ``start`` parameter, zeros at init) and
returns its state as a tuple whose first element is the hidden vector ``h`` that the output layer
reads. ``mask`` (optional, (B, H)) scales ``h_{t-1}`` where it enters the gates, never where it is
carried: variational recurrent dropout (Gal & Ghahramani 2016), one mask for all steps of a sequence. Each gate is a hand-written ``Linear`` over the concatenation ``[x_t, h_{t-1}]``; every tanh is a
``Tanh`` module so that the diagnostics see (and can flag saturation of) the recurrent activations.
Taps (``nn/tap.py``: identities without parameters) name what no module returns, for the
diagnostics' hooks: every sigmoid gate (``update_gate``, ``reset_gate``; ``input_gate``,
``forget_gate``, ``output_gate``), the state as the cell returns it (``hidden``, the LSTM's ``memory``)
and as the next step reads it (``hidden_in``, ``memory_in``): the gradient at the one is dL/ds_t, at the
other the part of dL/ds_{t-1} that step t carries back.

- ``RNNCell`` (Elman): ``h = tanh(W [x, h])``;
- ``GRUCell`` (Cho et al. 2014, makemore's form): reset ``r``, candidate ``hbar = tanh(W [x, r*h])``,
  update ``z``, ``h = (1 - z) * h + z * hbar``;
- ``LSTMCell`` (Hochreiter & Schmidhuber 1997): input/forget/output gates and a cell state ``c``,
  ``c = f * c + i * g``, ``h = o * tanh(c)`` (makemore omits it; torch.nn.LSTMCell is the oracle).
"""

from __future__ import annotations

import torch
from torch import nn

from charlab.nn.layers import Linear, Tanh
from charlab.nn.tap import Tap

State = tuple[torch.Tensor, ...]


def _masked(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return h if mask is None else h * mask  # (B, H)


class RNNCell(nn.Module):
    def __init__(self, n_in: int, n_hidden: int):
        super().__init__()
        self.start = nn.Parameter(torch.zeros(1, n_hidden))  # (1, H) learned initial h
        self.xh_to_h = Linear(n_in + n_hidden, n_hidden)
        self.act = Tanh()
        self.hidden_in, self.hidden = Tap("state_in"), Tap("state")

    def initial_state(self, batch: int) -> State:
        return (self.start.expand(batch, -1),)  # (B, H)

    def forward(self, x: torch.Tensor, state: State, mask: torch.Tensor | None = None) -> State:
        xh = torch.cat([x, _masked(self.hidden_in(state[0]), mask)], dim=1)  # (B, E+H)
        return (self.hidden(self.act(self.xh_to_h(xh))),)  # (B, H)


class GRUCell(nn.Module):
    def __init__(self, n_in: int, n_hidden: int):
        super().__init__()
        self.start = nn.Parameter(torch.zeros(1, n_hidden))  # (1, H)
        self.xh_to_z = Linear(n_in + n_hidden, n_hidden)
        self.xh_to_r = Linear(n_in + n_hidden, n_hidden)
        self.xh_to_hbar = Linear(n_in + n_hidden, n_hidden)
        self.act = Tanh()
        self.update_gate, self.reset_gate = Tap("gate"), Tap("gate")
        self.hidden_in, self.hidden = Tap("state_in"), Tap("state")

    def initial_state(self, batch: int) -> State:
        return (self.start.expand(batch, -1),)  # (B, H)

    def forward(self, x: torch.Tensor, state: State, mask: torch.Tensor | None = None) -> State:
        hprev = self.hidden_in(state[0])  # (B, H)
        hin = _masked(hprev, mask)  # (B, H)
        xh = torch.cat([x, hin], dim=1)  # (B, E+H)
        r = self.reset_gate(torch.sigmoid(self.xh_to_r(xh)))  # (B, H) which channels of h the candidate may read
        hbar = self.act(self.xh_to_hbar(torch.cat([x, r * hin], dim=1)))  # (B, H)
        z = self.update_gate(torch.sigmoid(self.xh_to_z(xh)))  # (B, H) how much of each channel to replace
        return (self.hidden((1 - z) * hprev + z * hbar),)  # (B, H)


class LSTMCell(nn.Module):
    def __init__(self, n_in: int, n_hidden: int):
        super().__init__()
        self.n_hidden = n_hidden
        self.start_h = nn.Parameter(torch.zeros(1, n_hidden))  # (1, H)
        self.start_c = nn.Parameter(torch.zeros(1, n_hidden))  # (1, H)
        self.xh_to_gates = Linear(n_in + n_hidden, 4 * n_hidden)  # i, f, g, o as torch orders them
        self.act_g = Tanh()
        self.act_c = Tanh()
        self.input_gate, self.forget_gate, self.output_gate = Tap("gate"), Tap("gate"), Tap("gate")
        self.hidden_in, self.memory_in = Tap("state_in"), Tap("state_in")
        self.hidden, self.memory = Tap("state"), Tap("state")

    def initial_state(self, batch: int) -> State:
        return self.start_h.expand(batch, -1), self.start_c.expand(batch, -1)  # (B, H), (B, H)

    def forward(self, x: torch.Tensor, state: State, mask: torch.Tensor | None = None) -> State:
        hprev, cprev = self.hidden_in(state[0]), self.memory_in(state[1])  # (B, H), (B, H)
        gates = self.xh_to_gates(torch.cat([x, _masked(hprev, mask)], dim=1))  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)  # each (B, H)
        i, f = self.input_gate(torch.sigmoid(i)), self.forget_gate(torch.sigmoid(f))  # (B, H), (B, H)
        o = self.output_gate(torch.sigmoid(o))  # (B, H)
        c = f * cprev + i * self.act_g(g)  # (B, H)
        h = o * self.act_c(c)  # (B, H)
        return self.hidden(h), self.memory(c)  # memory taps c after h read it: its gradient comes from t+1 on


CELLS = {"rnn": RNNCell, "gru": GRUCell, "lstm": LSTMCell}
