"""Which path a sequence model computes with: the fast variants (the default) or the hand-written reference.

The hand-written cells, attention and bag of words are the lesson and the reference; the fast variants
(``recurrent_fast.py``; ``bow_fast.py`` and ``transformer_fast.py``, each model's whole trunk as one
operation with its backward written out; ``attention_fast.py``) compute the same math from the same
parameters (no new parameter, so state dicts and checkpoints are unchanged) with fewer, larger operations. The tests check
fast == reference in float64, forward and gradients, with the same dropout draws.

A model takes the reference path when

- its ``sequence_path`` attribute is ``"reference"`` (set it with ``set_sequence_path(model, ...)``; a new
  model takes the value of the ``CHARLAB_SEQUENCE_PATH`` environment variable, ``fast`` by default), or
- a forward hook is registered on any module the fast variant would skip (the diagnostics recorder, the
  probe and the non-finite guard observe the hand-written layers through hooks; those steps run the
  reference so that the hooks see every layer).
"""

from __future__ import annotations

import os
import sys

import torch

from torch import nn
from torch.nn.modules import module as _module

ENV = "CHARLAB_SEQUENCE_PATH"
COMPACT_BELOW = 0.9  # hand-written backwards leave out rows without gradient when fewer than this share has one
PATHS = ("fast", "reference")


def default_path() -> str:
    """``CHARLAB_SEQUENCE_PATH`` (``fast`` or ``reference``); ``fast`` when unset or unknown (with one line)."""
    path = os.environ.get(ENV, "fast").strip().lower() or "fast"
    if path not in PATHS:
        print(f"charlab: {ENV}={path!r} is neither 'fast' nor 'reference'; using 'fast'", file=sys.stderr)
        return "fast"
    return path


def set_sequence_path(model: nn.Module, path: str) -> nn.Module:
    """Switch every sequence model inside ``model`` (an ensemble's members too) to ``path``."""
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    for module in model.modules():
        if hasattr(module, "sequence_path"):
            module.sequence_path = path
    return model


def hooked(module: nn.Module) -> bool:
    """True if a forward (pre-)hook is registered on ``module`` or any module inside it, or globally."""
    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def use_fast(module: nn.Module, bypassed: nn.Module | None = None) -> bool:
    """Whether ``module`` (which carries ``sequence_path``) may run its fast variant: asked for, and no
    hook on the modules the fast variant bypasses (``bypassed``, default ``module`` itself)."""
    return module.sequence_path == "fast" and not hooked(module if bypassed is None else bypassed)


def live_rows(grad: torch.Tensor) -> torch.Tensor | None:
    """The rows of ``grad`` (N, V) that are not all zero, when few enough to pay for working on them alone
    (``COMPACT_BELOW`` of all); else None.

    The loss ignores the padded positions after each item's end, so their logits get exactly zero
    gradient, and (causal attention: a padded position is attended only by later padded ones) so does
    every row-wise activation at those positions, block after block. Leaving those rows out of the
    backward's matmuls, LayerNorm and GELU is the same sum without its zero terms; with cut batches of
    names about a third of the rows are padding (``transformer_fast``, ``bow_fast``)."""
    live = grad.ne(0).any(1)  # (N,)
    count = int(live.sum())
    if count >= COMPACT_BELOW * grad.shape[0]:
        return None
    return live.nonzero().squeeze(1)  # (N',)
