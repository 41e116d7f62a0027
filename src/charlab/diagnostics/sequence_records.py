"""The sequence-model quantities of one step record, read from its tap entries (``taps.py``).

Plain values in, plain values out: the verdicts (``health_sequence.py``), the figures
(``plots_sequence.py``), TensorBoard and the experiments read a saved record through these, so they
agree on what, say, "the gradient through time of the cell" is. A tap's owner is the module it sits
in (``cell`` for ``cell.forget_gate``; ``blocks.0.attn`` for ``blocks.0.attn.probs``).
"""

from __future__ import annotations

from charlab.diagnostics import quantities_sequence as qs


def owner(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _by_owner(record: dict, kinds: tuple[str, ...]) -> dict[str, dict[str, list[dict]]]:
    out: dict[str, dict[str, list[dict]]] = {}
    for entry in record.get("taps", []):
        if entry["kind"] in kinds:
            out.setdefault(owner(entry["name"]), {}).setdefault(entry["kind"], []).append(entry)
    return out


def state_gradients(record: dict) -> dict[str, tuple[list[float], list[float]]]:
    """Cell -> (``||dL/ds_t||`` per position, the gradient each step t sends back to ``s_{t-1}``), the
    state's components (the LSTM's h and c) joined."""
    out = {}
    for cell, kinds in _by_owner(record, ("state", "state_in")).items():
        received = [e["grad_norm"] for e in kinds.get("state", []) if "grad_norm" in e]
        sent = [e["grad_norm"] for e in kinds.get("state_in", []) if "grad_norm" in e]
        if received and sent:
            out[cell] = (qs.joint_norms(received), qs.joint_norms(sent))
    return out


def through_time(record: dict) -> dict[str, float]:
    """Cell -> the factor backpropagation through all the batch's positions applies (``quantities_sequence``)."""
    factors = {cell: qs.through_time(*grads) for cell, grads in state_gradients(record).items()}
    return {cell: f for cell, f in factors.items() if f is not None}


def gates(record: dict) -> dict[str, dict]:
    """Gate tap name -> its entry (``mean``, ``low``, ``high``)."""
    return {e["name"]: e for e in record.get("taps", []) if e["kind"] == "gate"}


def attention(record: dict) -> dict[str, dict]:
    """Attention module -> ``{"entropy": [per head], "uniform", "logit_std": [per head], "head_grad": [...]}``."""
    out = {}
    for layer, kinds in _by_owner(record, ("attention", "scores", "heads")).items():
        if "attention" not in kinds:
            continue
        probs = kinds["attention"][0]
        entry = {"entropy": probs["entropy"], "uniform": probs["uniform"]}
        if "scores" in kinds:
            entry["logit_std"] = kinds["scores"][0]["std"]
        if "heads" in kinds and "grad_norm" in kinds["heads"][0]:
            entry["head_grad"] = kinds["heads"][0]["grad_norm"]
        out[layer] = entry
    return out


def normalised_entropy(entry: dict) -> list[float]:
    """Each head's mean attention entropy over that of uniform causal attention: 1 uniform, 0 one position."""
    return [e / entry["uniform"] if entry["uniform"] > 0 else 1.0 for e in entry["entropy"]]


def residual(record: dict) -> list[tuple[str, float]]:
    """(tap name, std) of the residual stream after each block, in order."""
    return [(e["name"], e["std"]) for e in record.get("taps", []) if e["kind"] == "residual"]
