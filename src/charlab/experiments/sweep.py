"""A sweep: ``charlab train`` over a grid of settings × seeds, each run an ordinary run directory.

Layout of ``--out``:

- ``runs/SETTING/seed-S/``: the run directory ``charlab train --out`` makes (``sample``, ``eval``,
  ``report`` work on it); ``logs/SETTING/seed-S.out|.err``: what the run printed;
- ``sweep-plan.json``: what every run shares (preset, data, steps, fixed settings, split); a rerun
  with other shared settings is refused, one with more seeds or more values of a varied key adds runs;
- ``sweep.md``, ``sweep.json``: per setting, train/dev/test loss and training time as mean ± std with
  a 95 % interval, failed runs with their reason, adjacent settings compared paired by seed;
  ``sweep-dev.png|svg``: the dev loss per setting with its interval.

Resuming is rerunning the command: a finished run (final weights, metrics and samples written) is
read, not retrained; a run stopped mid-training continues from its checkpoint
(``charlab train --resume``, exact: the same losses as an uninterrupted run); a run stopped before
its first checkpoint starts again.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from charlab import api, rundir
from charlab.errors import CharlabError
from charlab.experiments.aggregate import aggregate
from charlab.experiments.executors import Executor
from charlab.experiments.grid import PRESET_KEY, Setting
from charlab.experiments.progress_line import ProgressLine
from charlab.experiments.runner import Column, ExperimentResult, output_dir
from charlab.experiments.seeded import absolute
from charlab.experiments.seeds import SeedPlan
from charlab.experiments.tasks import WORKER_THREADS, Task
from charlab.rundir import CHECKPOINT_DIR, CONFIG, LAST_CHECKPOINT, SAMPLES, WEIGHTS

NAME = "sweep"
RUNS_DIR = "runs"
LOGS_DIR = "logs"
PLAN_FILE = "sweep-plan.json"
FINISHED, RESUMABLE, FRESH = "finished before", "resumed", "new"
COLUMNS = [Column("setting", "setting"), Column("train", "train loss", "{:.4f}"),
           Column("dev", "dev loss", "{:.4f}"), Column("test", "test loss", "{:.4f}"),
           Column("wall_time_s", "training time (s)", "{:.1f}"), Column("status", "status")]


@dataclass(frozen=True)
class SweepSpec:
    settings: list[Setting]
    plan: SeedPlan
    steps: int | None
    preset: str | None
    data: str | None
    out: Path


@dataclass(frozen=True)
class PlannedRun:
    setting: Setting
    seed: int
    path: Path

    @property
    def name(self) -> str:
        return f"{self.setting.name}/seed-{self.seed}"


def check_spec(spec: SweepSpec) -> None:
    """Every setting resolves to a valid config before anything runs (one line naming the setting)."""
    for setting in spec.settings:
        if spec.steps is not None and "steps" in setting.overrides():
            raise CharlabError("--steps and --grid steps=... both give the steps; use one")
        if spec.preset is not None and setting.preset is not None:
            raise CharlabError("--preset and --grid preset=... both give the preset; use one")
        try:
            api.resolve_config(setting.preset or spec.preset, steps=spec.steps, **setting.overrides())
        except CharlabError as err:
            raise CharlabError(f"setting {setting.name}: {err}") from None


def shared(spec: SweepSpec) -> dict:
    """What every run of the sweep shares: a rerun into the same --out must keep it."""
    varied = set(spec.settings[0].varied)
    fixed = {k: v for k, v in spec.settings[0].values if k not in varied}
    return {"preset": spec.preset, "data": absolute(spec.data), "steps": spec.steps,
            "split_seed": spec.plan.split_seed, "fixed": fixed, "varied": sorted(varied)}


def check_plan_file(spec: SweepSpec) -> None:
    path = spec.out / PLAN_FILE
    wanted = json.loads(json.dumps(shared(spec)))
    if path.is_file():
        found = json.loads(path.read_text(encoding="utf-8"))
        differs = [k for k in wanted if found.get(k) != wanted[k]]
        if differs:
            k = differs[0]
            raise CharlabError(f"{spec.out} holds another sweep (its {k} is {found.get(k)!r}, here {wanted[k]!r}); "
                               "rerun it with its own flags to resume it, or pass another --out")
    rundir.atomic_write_json(path, wanted)


def planned_runs(spec: SweepSpec) -> list[PlannedRun]:
    return [PlannedRun(setting, seed, spec.out / RUNS_DIR / setting.name / f"seed-{seed}")
            for setting in spec.settings for seed in spec.plan.seeds]


def final_record(path: Path) -> dict | None:
    """The run's final losses when it finished (its last files written), else None."""
    if not ((path / WEIGHTS).is_file() and (path / SAMPLES).is_file()):
        return None
    finals = [r for r in rundir.read_metrics(path) if isinstance(r, dict) and r.get("event") == "final"]
    return finals[-1] if finals else None


def run_state(path: Path) -> str:
    if final_record(path) is not None:
        return FINISHED
    if (path / CONFIG).is_file() and (path / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file():
        return RESUMABLE
    return FRESH


def train_args(run: PlannedRun, spec: SweepSpec) -> list[str]:
    setting = run.setting
    args = ["train", "--out", str(run.path.resolve()), "--json", "--seed", str(run.seed)]
    args += ["--split-seed", str(spec.plan.split_seed)] if spec.plan.split_seed is not None else []
    args += ["--steps", str(spec.steps)] if spec.steps is not None else []
    args += ["--preset", spec.preset] if spec.preset is not None else []
    args += ["--data", absolute(spec.data)] if spec.data is not None else []
    args += ["--threads", str(WORKER_THREADS)] if "threads" not in setting.overrides() else []
    args += ["--overwrite"] if run.path.exists() else []
    return args + setting.flags()


def task(run: PlannedRun, spec: SweepSpec, state: str) -> Task:
    args = ["train", "--resume", str(run.path.resolve()), "--json"] if state == RESUMABLE else train_args(run, spec)
    log = (spec.out / LOGS_DIR / run.setting.name / f"seed-{run.seed}").resolve()
    return Task(run.name, tuple(args), str(log))


def run_row(run: PlannedRun, outcome) -> dict:
    final = final_record(run.path)
    if final is None:
        why = outcome.reason if outcome is not None and outcome.reason else "left no final losses"
        return {"setting": run.setting.name, "train": None, "dev": None, "test": None, "wall_time_s": None,
                "status": f"failed: {why}"}
    return {"setting": run.setting.name, **{k: final.get(k) for k in ("train", "dev", "test", "wall_time_s")},
            "status": "ok"}


def seed_doc(spec: SweepSpec, seed: int, rows: list[dict]) -> dict:
    """One seed's rows as an ``ExperimentResult`` document, for ``aggregate``."""
    grid = {k: list(dict.fromkeys(dict(s.values)[k] for s in spec.settings)) for k, _ in spec.settings[0].values}
    settings = {"grid": grid, "preset": spec.preset or (None if PRESET_KEY in grid else "default"),
                "steps": spec.steps or "preset's", "data": absolute(spec.data) or "embedded names", "seed": seed}
    keys = " × ".join(spec.settings[0].varied) or "one setting"
    return {"experiment": NAME, "title": f"Sweep of {keys}", "settings": settings,
            "columns": [dataclasses.asdict(c) for c in COLUMNS], "rows": rows, "findings": [], "files": []}


def run_sweep(spec: SweepSpec, executor: Executor, progress: bool = True) -> ExperimentResult:
    """Train every planned run not finished yet on ``executor``, then the results over seeds."""
    check_spec(spec)
    output_dir(spec.out)
    check_plan_file(spec)
    runs = planned_runs(spec)
    states = {run.name: run_state(run.path) for run in runs}
    tasks = [task(run, spec, states[run.name]) for run in runs if states[run.name] != FINISHED]
    line = ProgressLine(f"sweep on {executor.describe()}", len(runs), skipped=len(runs) - len(tasks),
                        enabled=progress)
    line.show(0)
    outcomes = executor.run(tasks, line.update)
    line.close()
    docs = [seed_doc(spec, seed, [run_row(r, outcomes.get(r.name)) for r in runs if r.seed == seed])
            for seed in spec.plan.seeds]
    result = aggregate(docs, spec.plan)
    result.data["runs"] = [{"setting": r.setting.name, "seed": r.seed, "run": str(r.path), "was": states[r.name],
                            "status": run_row(r, outcomes.get(r.name))["status"]} for r in runs]
    result.findings[1:1] = run_findings(result.data["runs"])
    return result


def run_findings(runs: list[dict]) -> list[str]:
    """How many runs were new, resumed or read back, and each failure with its reason."""
    counts = {was: sum(r["was"] == was for r in runs) for was in (FRESH, RESUMABLE, FINISHED)}
    lines = [f"{len(runs)} runs: " + ", ".join(f"{n} {was}" for was, n in counts.items()) + "."]
    return lines + [f"{r['setting']} seed {r['seed']} {r['status']}" for r in runs if r["status"] != "ok"]
