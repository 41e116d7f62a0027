"""The verdict and the view of the records every rule reads (``health.py``, ``health_sequence.py``).

A ``Verdict`` names the rule, its status (``pass``, ``warn``, ``fail``), the layer, the value, the
threshold crossed, the likely cause and the fix (cause and fix are None on a pass); ``graded`` makes
one from a value and two thresholds. ``Records`` indexes a list of records (``recorder.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from charlab.diagnostics.sequence_records import owner

LATEST = 5  # sampled steps averaged for "as it is now": smooths one batch's noise


@dataclass
class Verdict:
    rule: str
    status: str
    layer: str | None
    value: float | None
    threshold: float | None
    cause: str | None
    fix: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def graded(rule: str, layer, value: float, warn: float, fail: float, cause: str, fix: str,
           higher_is_worse: bool = True) -> Verdict:
    """pass / warn / fail by comparing ``value`` with two thresholds; the threshold shown is the one crossed
    (the warn one on a pass)."""
    worse = (lambda t: value > t) if higher_is_worse else (lambda t: value < t)
    if worse(fail):
        return Verdict(rule, "fail", layer, value, fail, cause, fix)
    if worse(warn):
        return Verdict(rule, "warn", layer, value, warn, cause, fix)
    return Verdict(rule, "pass", layer, value, warn, None, None)


class Records:
    """Indexed view of a list of records: meta, step records, the init record, the probe record, and the
    step record of the initialisation (``init_step``: step 0 of a run recorded from its initialisation, or
    the ``{"kind": "init_step"}`` record that ``charlab diagnose`` carries over from training)."""

    def __init__(self, records: list[dict]):
        self.meta = next((r for r in records if r["kind"] == "meta"), {})
        self.steps = [r for r in records if r["kind"] == "step"]
        self.init = next((r for r in records if r["kind"] == "init"), None)
        self.probe = next((r for r in reversed(records) if r["kind"] == "probe"), None)
        self.init_step = next((r for r in records if r["kind"] == "init_step"), None)
        if self.init_step is None and self.meta.get("from_init") and self.steps and self.steps[0]["step"] == 0:
            self.init_step = self.steps[0]  # the step-0 record of a run recorded from its initialisation
        self.info = {layer["name"]: layer for layer in self.meta.get("layers", [])}

    def latest(self) -> list[dict]:
        return self.steps[-LATEST:]

    def layer_mean(self, name: str, getter) -> float | None:
        values = [getter(e) for r in self.latest() for e in r["layers"] if e["name"] == name]
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    def layer_order(self) -> list[str]:
        """Layer names in the order they ran (from the last step), else as declared."""
        return [e["name"] for e in self.steps[-1]["layers"]] if self.steps else list(self.info)

    def bounded(self) -> list[str]:
        return [n for n in self.layer_order() if self.info.get(n, {}).get("bounded")]

    def weights_2d(self) -> list[str]:
        """2-D parameters (weight matrices and embeddings) in the order their layers ran."""
        if not self.steps:
            return []
        names = [p["name"] for p in self.steps[-1]["params"] if len(p["shape"]) == 2]
        order = {n: i for i, n in enumerate(self.layer_order())}
        return sorted(names, key=lambda p: order.get(p.rsplit(".", 1)[0], len(order)))

    def tap_kinds(self) -> dict[str, str]:
        """Tap name -> kind (``nn/tap.py``), as declared in the meta record."""
        return {tap["name"]: tap["kind"] for tap in self.meta.get("taps", [])}

    def cell_layers(self) -> list[str]:
        """Bounded layers (tanh) inside recurrent cells: the modules that own ``state`` taps."""
        cells = {owner(name) for name, kind in self.tap_kinds().items() if kind == "state"}
        return [n for n in self.bounded() if owner(n) in cells]
