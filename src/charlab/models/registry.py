"""Models registered by name: ``MODELS[name](ModelConfig) -> CharModel``. No if/elif chains."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

from charlab.errors import CharlabError
from charlab.models.ensemble import Ensemble

MODELS: dict[str, Callable] = {}


def register(name: str):
    """Decorator: ``@register("mlp")`` on a builder taking a ``ModelConfig``."""

    def wrap(builder: Callable) -> Callable:
        MODELS[name] = builder
        return builder

    return wrap


def load_all() -> dict[str, Callable]:
    """Import every module of ``charlab.models`` so that their ``@register`` lines run."""
    package = importlib.import_module("charlab.models")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"charlab.models.{info.name}")
    return MODELS


def build_model(cfg, generator=None):
    """Build and initialise the model ``cfg.model`` names; ``generator`` drives the init. With
    ``cfg.members`` > 1, that many independently initialised copies in an ``Ensemble``."""
    models = load_all()
    if cfg.model not in models:
        raise CharlabError(f"unknown model {cfg.model!r}; choose one of: {', '.join(sorted(models))}")
    members = [models[cfg.model](cfg, generator) for _ in range(cfg.members)]
    return members[0] if len(members) == 1 else Ensemble(members)
