"""Diagnostics in a run directory: which file holds the records, and what metrics.jsonl adds to them."""

from __future__ import annotations

from pathlib import Path

from charlab.diagnostics import quantities as q
from charlab.diagnostics.sinks import read_records
from charlab.errors import CharlabError
from charlab.rundir import DIAGNOSE_RECORDS, DIAGNOSTICS


def train_losses(metrics: list[dict]) -> list[float]:
    """Per-step training losses from metrics.jsonl records, in step order."""
    rows = sorted((r["step"], r["loss"]) for r in metrics if r.get("event") == "train")
    return [loss for _, loss in rows]


def init_record(metrics: list[dict], vocab_size: int) -> dict | None:
    """The ``init`` record (loss at step 0 against -ln(1/V)) from metrics.jsonl, if step 0 was logged."""
    first = next((r for r in metrics if r.get("event") == "train" and r.get("step") == 0), None)
    if first is None:
        return None
    return {"kind": "init", "loss": first["loss"], "expected": q.expected_init_loss(vocab_size)}


def training_init_step(run: str | Path) -> dict | None:
    """The step-0 record of a run recorded from its initialisation while training (``--diagnose``), as an
    ``{"kind": "init_step", ...}`` record: ``charlab diagnose`` probes from the trained weights, so this is
    where the verdicts on the initialisation (attention collapsed at init) read it from."""
    path = Path(run) / DIAGNOSTICS
    if not path.is_file():
        return None
    records = read_records(path)
    meta = next((r for r in records if r["kind"] == "meta"), {})
    first = next((r for r in records if r["kind"] == "step"), None)
    if not meta.get("from_init") or first is None or first["step"] != 0:
        return None
    return {**first, "kind": "init_step"}


def load_diagnostics(run: str | Path) -> tuple[Path, list[dict]]:
    """The records of ``charlab diagnose`` if present, else those recorded while training."""
    run = Path(run)
    for name in (DIAGNOSE_RECORDS, DIAGNOSTICS):
        if (run / name).is_file():
            return run / name, read_records(run / name)
    raise CharlabError(f"{run} has no diagnostics ({DIAGNOSE_RECORDS} or {DIAGNOSTICS}); run "
                       f"`charlab diagnose {run}` first, or train with --diagnose")
