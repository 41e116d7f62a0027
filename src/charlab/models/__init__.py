"""Models: the contract (``base.py``), the registry (``registry.py``) and one file per model."""

from charlab.models.base import CharModel, SequenceModel, WindowModel
from charlab.models.registry import MODELS, build_model, register

__all__ = ["CharModel", "SequenceModel", "WindowModel", "MODELS", "build_model", "register"]
