"""An experiment over several seeds: each seed is ``charlab experiment NAME --seed S`` in a worker
process, writing its full result (table, findings, figures) into ``OUT/seeds/seed-S-split-K/``;
the results are then aggregated (``aggregate``) into ``OUT/NAME.md``, ``NAME.json`` and a figure.

A seed whose result is already there, made with the same steps and data, is not run again, so an
interrupted run over seeds picks up where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from charlab.experiments.aggregate import aggregate
from charlab.experiments.executors import Executor
from charlab.experiments.progress_line import ProgressLine
from charlab.experiments.runner import ExperimentResult, data_name
from charlab.experiments.seeds import SeedPlan
from charlab.experiments.tasks import Task

SEEDS_DIR = "seeds"
LOGS_DIR = "logs"


def seed_dir(out: Path, plan: SeedPlan, seed: int) -> Path:
    return out / SEEDS_DIR / f"seed-{seed}-split-{plan.split_of(seed)}"


def absolute(data: str | None) -> str | None:
    """A worker may run elsewhere: it gets the data file's absolute path."""
    return None if data is None else str(Path(data).resolve())


def seed_task(name: str, out: Path, plan: SeedPlan, seed: int, steps: int | None, data: str | None) -> Task:
    folder = seed_dir(out, plan, seed).resolve()
    args = ["experiment", name, "--seed", str(seed), "--out", str(folder), "--json"]
    args += ["--steps", str(steps)] if steps is not None else []
    args += ["--data", absolute(data)] if data is not None else []
    args += ["--split-seed", str(plan.split_seed)] if plan.split_seed is not None else []
    return Task(f"seed-{seed}", tuple(args), str(folder.parent / LOGS_DIR / folder.name))


def finished_result(name: str, folder: Path, steps: int, data: str | None) -> dict | None:
    """The seed's result document when it is complete and was made with these steps and data."""
    path = folder / f"{name}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    settings = doc.get("settings", {}) if isinstance(doc, dict) else {}
    same = settings.get("steps") == steps and settings.get("data") == data_name(absolute(data))
    return doc if same and "columns" in doc else None


def run_seeds(module, plan: SeedPlan, steps: int | None, data: str | None, out: Path, executor: Executor,
              progress: bool = True) -> ExperimentResult:
    """``module`` (an experiment: ``NAME``, ``DEFAULT_STEPS``) over ``plan``'s seeds, aggregated."""
    resolved = module.DEFAULT_STEPS if steps is None else steps
    done = {s: finished_result(module.NAME, seed_dir(out, plan, s), resolved, data) for s in plan.seeds}
    tasks = [seed_task(module.NAME, out, plan, s, steps, data) for s in plan.seeds if done[s] is None]
    line = ProgressLine(f"{module.NAME} over {len(plan.seeds)} seeds on {executor.describe()}", len(plan.seeds),
                        skipped=len(plan.seeds) - len(tasks), enabled=progress)
    line.show(0)
    results = executor.run(tasks, line.update)
    line.close()
    failures = {}
    for seed in plan.seeds:
        if done[seed] is None:
            done[seed] = finished_result(module.NAME, seed_dir(out, plan, seed), resolved, data)
            outcome = results.get(f"seed-{seed}")
            if done[seed] is None:
                failures[seed] = outcome.reason if outcome and outcome.reason else "left no result"
    docs = [done[s] for s in plan.seeds if s not in failures]
    return aggregate(docs, plan, failures)
