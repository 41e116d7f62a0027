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

The whole-trunk operations (bag of words, transformer) also take the loss when the forward has targets,
their rows with a target first (``trunk_loss.py``).
"""

from __future__ import annotations

import os
import sys

from torch import nn
from torch.nn.modules import module as _module

ENV = "CHARLAB_SEQUENCE_PATH"
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


def modules_of(module: nn.Module) -> list[nn.Module]:
    """``module`` and every module inside it: a plain walk of ``_modules`` (``nn.Module.modules()`` costs
    ~0.6 us a module, which a forward that checks its hooks pays every step; this ~0.15)."""
    found, stack = [], [module]
    while stack:
        m = stack.pop()
        found.append(m)
        stack.extend(m._modules.values())
    return found


def any_hook(modules: list[nn.Module]) -> bool:
    """True if a forward (pre-)hook is registered on any of ``modules``, or globally."""
    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def hooked(module: nn.Module) -> bool:
    """True if a forward (pre-)hook is registered on ``module`` or any module inside it, or globally."""
    return any_hook(modules_of(module))


def use_fast(module: nn.Module, bypassed: nn.Module | None = None) -> bool:
    """Whether ``module`` (which carries ``sequence_path``) may run its fast variant: asked for, and no
    hook on the modules the fast variant bypasses (``bypassed``, default ``module`` itself)."""
    return module.sequence_path == "fast" and not hooked(module if bypassed is None else bypassed)
