"""What the recorder keeps of each tap (``nn/tap.py``) on a sampled step, and what it reduces it to.

A tap's forward hook sees its value once per call (a recurrent cell's taps once per position); each
call's gradient arrives through a tensor hook, in reverse order, and is filed under the call's index.
``reduce_tap`` turns one tap's calls into its entry of the step record, on the device:

===============  =========================================================================
``gate``         ``mean``, ``low`` (fraction < 0.03), ``high`` (fraction > 0.97)
``state``        ``grad_norm``: ``||dL/ds_t||`` per position (0 where no gradient arrived)
``state_in``     ``grad_norm``: the gradient each step carries back to ``s_{t-1}``, per position
``scores``       ``std``: per head, over the positions the causal mask keeps
``attention``    ``entropy`` per head (nats) and ``uniform``: mean ln(t + 1) over the positions
``heads``        ``grad_norm`` per head
``residual``     ``std``
===============  =========================================================================
"""

from __future__ import annotations

from torch import nn

import torch

from charlab.diagnostics import quantities as q
from charlab.diagnostics import quantities_sequence as qs
from charlab.nn.tap import Tap

NEEDS = {  # kind -> (keep the value, keep the gradient)
    "gate": (True, False), "state": (False, True), "state_in": (False, True), "scores": (True, False),
    "attention": (True, False), "heads": (False, True), "residual": (True, False),
}


def model_taps(model: nn.Module) -> list[tuple[str, Tap]]:
    """Every tap in the model, named as in ``model.named_modules()`` (``cell.forget_gate``, ...)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Tap)]


def _batched(values: list[torch.Tensor]) -> torch.Tensor:
    """Several calls of one tap in a step (an ensemble member's batch slices) side by side on dim 0."""
    return values[0] if len(values) == 1 else torch.cat(values)


def reduce_tap(name: str, kind: str, outs: list[torch.Tensor | None],
               grads: dict[int, torch.Tensor]) -> dict:
    """The step record's entry for one tap: ``{"name", "kind", ...}`` with device tensors (see above)."""
    entry: dict = {"name": name, "kind": kind}
    ordered = [grads.get(i) for i in range(len(outs))]  # call order
    present = [g for g in ordered if g is not None]
    if kind == "gate":
        entry.update(qs.gate_summary(torch.cat([o.reshape(-1) for o in outs])))
    elif kind in ("state", "state_in") and present:
        entry["grad_norm"] = qs.step_grad_norms(ordered)  # (T,)
    elif kind == "scores":
        entry["std"] = qs.visible_logit_std(_batched(outs))  # (nh,)
    elif kind == "attention":
        p = _batched(outs)  # (B, nh, T, T)
        entry.update(entropy=qs.attention_entropy(p), uniform=qs.uniform_entropy(p.shape[-1]))
    elif kind == "heads" and present:
        entry["grad_norm"] = qs.head_grad_norms(_batched(present))  # (nh,)
    elif kind == "residual":
        entry["std"] = q.std(_batched(outs))
    return entry
