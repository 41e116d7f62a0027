"""``Tap``: an identity module that names a tensor inside a hand-written layer, so that forward hooks see it.

A gate's activations, the state a recurrent cell carries or reads, the attention probabilities: values
computed inside one module's ``forward`` that no module returns. A tap called on such a value returns a
view of it (no copy, no parameter: state dicts and checkpoints are unchanged), so a forward hook on the
tap receives the value and a tensor hook on the tap's output receives the gradient flowing through
this use of it alone (a view is its own node in the graph: the tap on ``h_{t-1}`` where step t reads it
gets the gradient that comes back through step t, not the one from the output layer).

``kind`` says what the value is, and so what the diagnostics reduce it to (``diagnostics/taps.py``):

- ``gate``: a sigmoid in (0, 1) (saturation at either end, mean);
- ``state``: a recurrent state as the cell returns it, once per position (gradient norm per position);
- ``state_in``: the state as the cell reads it at the next position (the gradient carried back one step);
- ``scores``: attention logits before the causal mask, (B, nh, T, T) (their spread per head);
- ``attention``: attention probabilities, (B, nh, T, T) (entropy per head);
- ``heads``: each head's output before the heads are joined, (B, nh, T, hs) (gradient norm per head);
- ``residual``: the residual stream after a block (its std).

Taps are called only on the hand-written path; the fast variants (``nn/fast.py``) never call them.
"""

from __future__ import annotations

import torch
from torch import nn

KINDS = ("gate", "state", "state_in", "scores", "attention", "heads", "residual")


class Tap(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"tap kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)  # a node of its own: hooks on it see this use of x only

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"
