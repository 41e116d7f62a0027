"""Where tensors live: ``--device cpu|cuda|mps``, or the best available one when omitted.

Random numbers never depend on the device: the model is initialised on the CPU with the seeded
generator and then moved, batch indices are drawn on the CPU and sampling draws on the CPU, so a
seed gives the same split, init and batch order everywhere (values differ only by the rounding of
each device's kernels).
"""

from __future__ import annotations

import torch

from charlab.data import Examples
from charlab.errors import CharlabError

AUTO = "auto"
DEVICES = ("cpu", "cuda", "mps")


def available(name: str) -> bool:
    if name == "cuda":
        return torch.cuda.is_available()
    if name == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return name == "cpu"


def resolve(name: str | None) -> str:
    """``auto``/``None`` -> the first available of cuda, mps, cpu; a named device must be available."""
    if name in (None, "", AUTO):
        return next(d for d in ("cuda", "mps", "cpu") if available(d))
    if name not in DEVICES:
        raise CharlabError(f"--device must be one of {', '.join((AUTO, *DEVICES))}, got {name!r}")
    if not available(name):
        raise CharlabError(f"--device {name}: no {name} device is available on this machine; "
                           "use --device cpu or omit --device to choose automatically")
    return name


def to_device(examples: Examples, device: torch.device | str) -> Examples:
    """The same examples on ``device`` (the very same object when already there)."""
    if examples.x.device == torch.device(device):
        return examples
    return Examples(x=examples.x.to(device), y=examples.y.to(device), owner=examples.owner.to(device))
