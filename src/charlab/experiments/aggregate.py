"""One result over seeds, from the results of each seed: generic over ``ExperimentResult``.

Every seed's result has the same rows in the same order (an experiment's variants do not depend on
its seed). Per row, a column is

- a *label* when it leads the row and is the same text for every seed (the first column is always
  the variant's name, even when it is a number such as a learning rate);
- *numeric* when its values are numbers (or lists of numbers, one per layer): it becomes a summary
  over the seeds where it is finite: mean, sample std, 95 % Student-t interval, n, and the values;
- *text* otherwise: kept when every seed agrees, else counted ("step 999 ×2; diverged ×1").

A value that two or more seeds all give alike (a reference such as the lecture's dev loss) is kept
as it is, except the compared metric, which is always a summary.

Adjacent variants that report ``COMPARED_METRIC`` are compared paired by seed (``stats``).
"""

from __future__ import annotations

from collections import Counter

import matplotlib.pyplot as plt

from charlab.errors import CharlabError
from charlab.experiments import stats
from charlab.experiments.runner import DIFF_FORMAT, DIFF_STD_FORMAT, Column, ExperimentResult
from charlab.experiments.seeds import SeedPlan
from charlab.report.table import is_number

COMPARED_METRIC = "dev"  # the held-out loss every trained variant reports; lower is better
SEEDS_COLUMN = Column("seeds", "seeds")


def column_kind(values: list) -> str:
    """'numeric', 'list' or 'text' for one column's values over every row and seed."""
    present = [v for v in values if v is not None]
    if present and all(is_number(v) for v in present):
        return "numeric"
    if present and all(isinstance(v, list) and all(x is None or is_number(x) for x in v) for v in present):
        return "list"
    return "text"


def label_keys(columns: list[Column], docs: list[dict]) -> list[str]:
    """The first column, and the text columns after it that every seed gives the same value."""
    keys = [columns[0].key]
    for column in columns[1:]:
        values = [[row.get(column.key) for row in doc["rows"]] for doc in docs]
        if column_kind([v for per_seed in values for v in per_seed]) != "text" or any(v != values[0] for v in values):
            break
        keys.append(column.key)
    return keys


def summary(values: list) -> dict:
    return {**stats.summarize([v for v in values if stats.finite(v)]).to_dict(), "values": values}


def list_summary(values: list) -> dict:
    """Item by item (a layer each): the summary of the seeds that have that item."""
    width = max((len(v) for v in values if isinstance(v, list)), default=0)
    items = [summary([v[i] if isinstance(v, list) and i < len(v) else None for v in values]) for i in range(width)]
    return {key: [item[key] for item in items] for key in ("mean", "std", "ci_low", "ci_high", "n")} | {
        "values": values}


def text_summary(values: list):
    if all(v == values[0] for v in values):
        return values[0]
    counts = Counter("-" if v is None else str(v) for v in values)
    return "; ".join(f"{value} ×{count}" for value, count in counts.items())


SUMMARIES = {"numeric": summary, "list": list_summary, "text": text_summary}


def check_same_rows(docs: list[dict], key: str) -> None:
    first = [row.get(key) for row in docs[0]["rows"]]
    for doc in docs[1:]:
        if [row.get(key) for row in doc["rows"]] != first:
            raise CharlabError(f"the seeds' results of {docs[0]['experiment']} list different variants; "
                               "rerun them into an empty --out")


def aggregate_rows(columns: list[Column], docs: list[dict]) -> list[dict]:
    labels = set(label_keys(columns, docs))
    kinds = {c.key: column_kind([row.get(c.key) for doc in docs for row in doc["rows"]]) for c in columns}
    rows = []
    for i, first in enumerate(docs[0]["rows"]):
        row = {}
        for column in columns:
            values = [doc["rows"][i].get(column.key) for doc in docs]
            alike = len(docs) > 1 and column.key != COMPARED_METRIC and all(v == values[0] for v in values)
            kept = column.key in labels or alike
            row[column.key] = first.get(column.key) if kept else SUMMARIES[kinds[column.key]](values)
        row[SEEDS_COLUMN.key] = metric_n(row) if metric_n(row) is not None else len(docs)
        rows.append(row)
    return rows


def metric_n(row: dict) -> int | None:
    """How many seeds gave the row a finite ``COMPARED_METRIC``; None when the row has no such summary."""
    metric = row.get(COMPARED_METRIC)
    return metric["n"] if isinstance(metric, dict) and isinstance(metric.get("n"), int) else None


def variant_name(row: dict, keys: list[str]) -> str:
    return " ".join(str(row[k]) for k in keys)


def compare(rows: list[dict], names: list[str]) -> list[dict]:
    """Each variant that reports the metric against the one before it, paired by seed: B − A."""
    measured = [(name, row[COMPARED_METRIC]) for name, row in zip(names, rows) if metric_n(row)]
    comparisons = []
    for (a, ma), (b, mb) in zip(measured, measured[1:]):
        diff = stats.summarize(stats.paired_differences(ma["values"], mb["values"]))
        comparisons.append({"a": a, "b": b, "metric": COMPARED_METRIC, "diff_mean": diff.mean,
                            "diff_std": diff.std, "ci_low": diff.ci_low, "ci_high": diff.ci_high, "n": diff.n,
                            "verdict": stats.verdict(diff)})
    return comparisons


def comparison_text(c: dict) -> str:
    if c["diff_mean"] is None:
        return f"{c['b']} vs {c['a']}: no seed where both have a {c['metric']} loss"
    if c["diff_std"] is None:
        return f"{c['b']} vs {c['a']}: {c['metric']} {DIFF_FORMAT.format(c['diff_mean'])} ({c['verdict']})"
    return (f"{c['b']} vs {c['a']}: {c['metric']} {DIFF_FORMAT.format(c['diff_mean'])} ± "
            f"{DIFF_STD_FORMAT.format(c['diff_std'])} "
            f"(95 % CI {DIFF_FORMAT.format(c['ci_low'])} to {DIFF_FORMAT.format(c['ci_high'])}, {c['n']} seeds): "
            f"{c['verdict']}")


def interval_figure(rows: list[dict], names: list[str], comparisons: list[dict]) -> plt.Figure:
    """Left: the compared metric per variant, each seed a dot, the mean a square with its 95 % interval.
    Right: each paired difference B − A with its interval; one that crosses 0 is seed noise."""
    metric = COMPARED_METRIC
    fig, axes = plt.subplots(1, 2, figsize=(max(10.0, 1.6 * len(rows)), 4.5))
    for x, row in enumerate(rows):
        if metric_n(row):
            s = row[metric]
            axes[0].plot([x] * s["n"], [v for v in s["values"] if stats.finite(v)], "o", color="0.6", ms=4)
            interval_bar(axes[0], x, s["mean"], s["ci_low"], s["ci_high"])
    axes[0].set_xticks(range(len(rows)), names, rotation=30, ha="right")
    axes[0].set_ylabel(f"{metric} loss")
    axes[0].set_title(f"{metric} loss: seeds (dots), mean and 95 % interval")
    for x, c in enumerate(comparisons):
        interval_bar(axes[1], x, c["diff_mean"], c["ci_low"], c["ci_high"])
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set_xticks(range(len(comparisons)), [f"{c['b']} - {c['a']}" for c in comparisons], rotation=30,
                       ha="right")
    axes[1].set_title(f"paired by seed: {metric} B - A and 95 % interval")
    fig.tight_layout()
    return fig


def interval_bar(ax, x: float, mean: float | None, low: float | None, high: float | None) -> None:
    if mean is None:
        return
    if low is None:
        ax.plot([x], [mean], "s", color="C0")
    else:
        ax.errorbar([x], [mean], yerr=[[mean - low], [high - mean]], fmt="s", color="C0", capsize=6)


def aggregate(docs: list[dict], plan: SeedPlan, failures: dict[int, str] | None = None) -> ExperimentResult:
    """One ``ExperimentResult`` over the seeds' results (``ExperimentResult.to_json`` documents, in
    the order of ``plan.seeds`` less the ``failures``: seed -> why it has no result)."""
    failures = failures or {}
    if not docs:
        raise CharlabError("no seed produced a result: " + "; ".join(f"seed {s}: {why}" for s, why in failures.items()))
    columns = [Column(**c) for c in docs[0]["columns"]]
    keys = label_keys(columns, docs)
    check_same_rows(docs, keys[0])
    rows = aggregate_rows(columns, docs)
    names = [variant_name(row, keys) for row in rows]
    comparisons = compare(rows, names)
    seeds = [s for s in plan.seeds if s not in failures]
    findings = [f"{plan.describe()}; each cell: mean ± sample std [95 % Student-t interval] over the seeds.",
                *[comparison_text(c) for c in comparisons],
                *[f"seed {s} has no result: {why}" for s, why in failures.items()],
                *[f"seed {seeds[0]} alone: {line}" for line in docs[0]["findings"]]]
    settings = {k: v for k, v in docs[0]["settings"].items() if k != "seed"}
    settings.update(seeds=list(plan.seeds), split_seed=plan.split_seed if plan.split_seed is not None else "per seed")
    figures = {}
    if any(metric_n(r) for r in rows):
        figures[COMPARED_METRIC] = lambda: interval_figure(rows, names, comparisons)
    title = f"{docs[0]['title']}, over {len(plan.seeds)} seeds"
    data = {"per_seed_files": {s: doc.get("files", []) for s, doc in zip(seeds, docs)}, "failures": failures}
    return ExperimentResult(docs[0]["experiment"], title, settings, [*columns, SEEDS_COLUMN], rows, findings,
                            data=data, figures=figures, comparisons=comparisons)
