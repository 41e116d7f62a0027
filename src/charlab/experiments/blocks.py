"""Per-layer views of the recorder's step records, shared by the experiments.

A hidden *block* is ``Linear -> BatchNorm? -> activation?``; its *output* is the last layer before the
next Linear (the tanh when there is one). The layer statistics themselves come from
``charlab.diagnostics`` (the recorder); this module only picks them out by layer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    linear: str  # module name of the block's Linear, e.g. "layers.2"
    output: str  # module name of the block's last layer, e.g. "layers.4"


def hidden_blocks(meta: dict) -> list[Block]:
    """The hidden blocks of a model, from the recorder's ``meta`` record (layers in execution order)."""
    layers = meta["layers"]
    linear_at = [i for i, layer in enumerate(layers) if layer["type"] == "Linear"]
    return [Block(layers[start]["name"], layers[end - 1]["name"]) for start, end in zip(linear_at, linear_at[1:])]


def block_stats(step_record: dict, blocks: list[Block]) -> dict[str, list]:
    """Per hidden block: output std, % saturated (None if unbounded), output-gradient std, grad:data
    of the Linear weight. Lists ordered from the first block to the last."""
    layers = {entry["name"]: entry for entry in step_record["layers"]}
    params = {entry["name"]: entry for entry in step_record["params"]}
    outs = [layers[b.output] for b in blocks]
    saturation = [o["out"].get("saturation") for o in outs]
    return {
        "act_std": [o["out"]["std"] for o in outs],
        "saturation_pct": [None if s is None else 100 * s for s in saturation],
        "grad_std": [o["grad"]["std"] if "grad" in o else None for o in outs],
        "grad_data": [params[f"{b.linear}.weight"].get("grad_data") for b in blocks],
    }


def meta_record(records: list[dict]) -> dict:
    return next(r for r in records if r["kind"] == "meta")
