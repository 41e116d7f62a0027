"""``--grid KEY=V1,V2 KEY=V ...``: the settings of a sweep, the cross product of every key's values.

A key is any ``charlab train`` setting (a field of ``ModelConfig`` or ``TrainConfig``, written
``n_hidden`` or ``n-hidden``) or ``preset``; values are read with the setting's own type. A key
with one value is the same for every run; the keys with several values name each setting
(``lr=0.03,n_hidden=100``) and its folder. Seeds are not a grid key: ``--seeds`` gives them.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass

from charlab.config import ModelConfig, TrainConfig
from charlab.errors import CharlabError

PRESET_KEY = "preset"
NOT_GRID_KEYS = {"seed": "--seeds", "split_seed": "--seed (the shared split) or --vary-split"}
VALUE_SEPARATOR = ","
UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._=,+-]")  # a setting's name is a folder name on every filesystem
BASE_NAME = "base"  # the name of the one setting of a grid without a key of several values


def field_types() -> dict[str, tuple[type, tuple | None]]:
    """Every train flag's setting -> (value type, its choices or None)."""
    found = {}
    for cls in (ModelConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            meta = f.metadata or {}
            if meta.get("help") is not None and f.name not in NOT_GRID_KEYS:
                found[f.name] = (meta.get("type", type(f.default)), meta.get("choices"))
    return found


def grid_keys() -> list[str]:
    return sorted([*field_types(), PRESET_KEY])


@dataclass(frozen=True)
class Setting:
    """One point of the grid: ``values`` are ``(key, value)`` for every grid key, in the grid's order."""

    values: tuple[tuple[str, object], ...]
    varied: tuple[str, ...]

    @property
    def name(self) -> str:
        parts = [f"{k}={v}" for k, v in self.values if k in self.varied]
        return UNSAFE_IN_NAME.sub("_", ",".join(parts)) or BASE_NAME

    @property
    def preset(self) -> str | None:
        return dict(self.values).get(PRESET_KEY)

    def overrides(self) -> dict:
        return {k: v for k, v in self.values if k != PRESET_KEY}

    def flags(self) -> list[str]:
        """The ``charlab train`` flags that give this setting."""
        return [arg for k, v in self.values for arg in ("--" + k.replace("_", "-"), str(v))]


def parse_value(key: str, text: str):
    kind, choices = field_types().get(key, (str, None))
    try:
        value = kind(text)
    except ValueError:
        raise CharlabError(f"--grid {key}: {text!r} is not {'an' if kind is int else 'a'} {kind.__name__}") from None
    if choices and value not in choices:
        raise CharlabError(f"--grid {key}: {text!r} is not one of {', '.join(choices)}")
    return value


def parse_entry(entry: str) -> tuple[str, list]:
    key, sep, values = entry.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise CharlabError(f"--grid takes KEY=V1,V2,... entries (e.g. lr=0.03,0.1), got {entry!r}")
    if key in NOT_GRID_KEYS:
        raise CharlabError(f"--grid {key}: not a grid key; use {NOT_GRID_KEYS[key]}")
    if key not in field_types() and key != PRESET_KEY:
        raise CharlabError(f"unknown --grid key {key!r}; valid keys: {', '.join(grid_keys())}")
    texts = [t.strip() for t in values.split(VALUE_SEPARATOR)]
    if not all(texts):
        raise CharlabError(f"--grid {key}: empty value in {entry!r}; give values as {key}=V1,V2")
    parsed = [parse_value(key, t) for t in texts]
    if len(set(parsed)) != len(parsed):
        raise CharlabError(f"--grid {key}: a value is listed twice in {entry!r}; list each once")
    return key, parsed


def parse_grid(entries: list[str]) -> list[Setting]:
    """Every setting of the grid, the first key varying slowest."""
    keys, values = [], []
    for entry in entries:
        key, parsed = parse_entry(entry)
        if key in keys:
            raise CharlabError(f"--grid names {key} twice; give all its values in one entry: {key}=V1,V2")
        keys.append(key)
        values.append(parsed)
    varied = tuple(k for k, v in zip(keys, values) if len(v) > 1)
    return [Setting(tuple(zip(keys, combo)), varied) for combo in itertools.product(*values)]
