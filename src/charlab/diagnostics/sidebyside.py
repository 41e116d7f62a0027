"""Two runs' statistics and verdicts side by side (``charlab compare``), from their records alone."""

from __future__ import annotations

import math

from charlab.diagnostics.health import Records, param_mean, check, rule_update_data


def labels(view: Records) -> dict[str, str]:
    """Names that line up across runs whose layer indices differ (a BatchNorm shifts them):
    ``Tanh#1``, ``weight#2``, ``BatchNorm1d#1``, each with the run's own name in brackets."""
    out = {}
    norms = [n for n in view.layer_order() if view.info.get(n, {}).get("batchnorm")]
    groups = [view.bounded(), view.weights_2d(), norms]
    for group, kind in zip(groups, ("type", "weight", "type")):
        for i, name in enumerate(group, 1):
            base = view.info.get(name, {}).get("type", "layer") if kind == "type" else "weight"
            out[name] = f"{base}#{i}"
    return out


def key_numbers(records: list[dict]) -> dict[str, float | None]:
    """The numbers the lecture compares between runs, keyed by a readable name."""
    view = Records(records)
    label = labels(view)
    numbers: dict[str, float | None] = {}
    if view.init is not None:
        numbers["loss at init"] = view.init["loss"]
    for name in view.bounded():
        numbers[f"{label[name]} activation std"] = view.layer_mean(name, lambda e: e["out"]["std"])
        numbers[f"{label[name]} saturated fraction"] = view.layer_mean(name, lambda e: e["out"].get("saturation"))
        numbers[f"{label[name]} gradient std"] = view.layer_mean(name, lambda e: e.get("grad", {}).get("std"))
    for name in view.weights_2d():
        numbers[f"{label[name]} grad:data"] = param_mean(view, name, "grad_data")
    update = rule_update_data(view)
    if update:
        numbers["log10 update:data (median)"] = update[0].value
    for layer in (view.probe or {}).get("bounded", []):
        numbers[f"{label.get(layer['name'], layer['name'])} dead units"] = float(layer["dead"])
    return {k: (None if v is None or math.isnan(v) else v) for k, v in numbers.items()}


def verdict_statuses(records: list[dict]) -> dict[tuple[str, str | None], str]:
    label = labels(Records(records))
    return {(v.rule, label.get(v.layer, v.layer)): v.status for v in check(records)}


def side_by_side(records_a: list[dict], records_b: list[dict]) -> dict:
    """``{"numbers": [{"quantity", "a", "b"}], "verdicts": [{"rule", "layer", "a", "b"}]}``, union of keys."""
    na, nb = key_numbers(records_a), key_numbers(records_b)
    numbers = [{"quantity": k, "a": na.get(k), "b": nb.get(k)} for k in dict.fromkeys([*na, *nb])]
    va, vb = verdict_statuses(records_a), verdict_statuses(records_b)
    verdicts = [{"rule": rule, "layer": layer, "a": va.get((rule, layer)), "b": vb.get((rule, layer))}
                for rule, layer in dict.fromkeys([*va, *vb])]
    return {"numbers": numbers, "verdicts": verdicts}
