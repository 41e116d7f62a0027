"""charlab sweep and experiments over seeds: the grid, the plan, resuming, aggregation, the pools.

The fast tests run the sweep's tasks in this process (``InProcess``); the slow ones run the real
worker processes: two settings x two seeds on two workers, a sweep killed and rerun, a worker killed,
the pool killed outright, and a Dask ``LocalCluster`` giving the same numbers as the local pool.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charlab import api
from charlab.cli.main import main
from charlab.data import read_items
from charlab.errors import CharlabError
from charlab.experiments import aggregate, grid, seeds
from charlab.experiments.executors import make_executor
from charlab.experiments.runner import train_variant
from charlab.experiments.sweep import FINISHED, FRESH, RESUMABLE, SweepSpec, final_record, run_sweep
from charlab.experiments.tasks import TaskResult
from charlab.rundir import SAMPLES, WEIGHTS
from conftest import cli_env

NAMES_STRIDE = 16  # every 16th embedded name (~2,000): runs and their final evaluations stay cheap
STEPS = 30  # enough steps for seeds to differ; each run well under a second in this process
WAIT_S = 120  # the slow tests' limit for a subprocess to reach the state they wait for
POLL_S = 0.05


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(read_items(None)[::NAMES_STRIDE]) + "\n", encoding="utf-8")
    return str(path)


class InProcess:
    """An executor that runs each task's charlab command line in this process, one after another."""

    def describe(self) -> str:
        return "this process"

    def run(self, tasks, on_done):
        results = {}
        for task in tasks:
            code = main(list(task.args))
            results[task.name] = TaskResult(task.name, code, None if code == 0 else f"exit status {code}", 0.0)
            on_done(results[task.name], 0)
        return results


def spec(tiny, out, entries=("lr=0.05,0.1",), seeds_text="2", steps=STEPS, vary_split=False) -> SweepSpec:
    return SweepSpec(grid.parse_grid(list(entries)), seeds.seed_plan(seeds_text, 42, vary_split), steps, None, tiny,
                     Path(out))


# The grid and the seeds


def test_grid_crosses_keys_and_names_settings_by_what_varies():
    settings = grid.parse_grid(["lr=0.03,0.1", "n-hidden=100,200", "optimizer=adamw"])
    assert [s.name for s in settings] == ["lr=0.03,n_hidden=100", "lr=0.03,n_hidden=200", "lr=0.1,n_hidden=100",
                                          "lr=0.1,n_hidden=200"]
    assert settings[1].overrides() == {"lr": 0.03, "n_hidden": 200, "optimizer": "adamw"}
    assert settings[1].flags() == ["--lr", "0.03", "--n-hidden", "200", "--optimizer", "adamw"]
    assert [s.name for s in grid.parse_grid([])] == [grid.BASE_NAME]
    assert grid.parse_grid(["preset=mlp,deep-bn"])[1].preset == "deep-bn"


@pytest.mark.parametrize("entry,message", [
    ("lrr=0.1", "unknown --grid key 'lrr'; valid keys: activation, batch_size"),
    ("seed=1,2", "use --seeds"),
    ("lr=abc", "'abc' is not a float"),
    ("n_hidden=1.5", "'1.5' is not an int"),
    ("norm=layer", "not one of none, batchnorm"),
    ("lr", "KEY=V1,V2"),
    ("lr=0.1,,0.2", "empty value"),
    ("lr=0.1,0.1", "listed twice"),
])
def test_grid_errors_name_the_problem(entry, message):
    with pytest.raises(CharlabError) as err:
        grid.parse_grid([entry])
    assert message in str(err.value)


def test_seeds_count_list_and_split():
    assert seeds.parse_seeds(None, 42) == (42,)
    assert seeds.parse_seeds("3", 42) == (42, 43, 44)
    assert seeds.parse_seeds("1,2,3", 42) == (1, 2, 3)
    for bad in ("0", "a", "1,1", ","):
        with pytest.raises(CharlabError):
            seeds.parse_seeds(bad, 42)
    plan = seeds.seed_plan("2", 7, vary_split=False)
    assert plan.seeds == (7, 8) and plan.split_of(8) == 7
    assert seeds.seed_plan("2", 7, vary_split=True).split_of(8) == 8


def test_fixed_split_keeps_the_split_and_changes_the_seed(tiny):
    with seeds.fixed_split(42):
        other_seed = train_variant("mlp-bn", 5, 43, data=tiny)
    same = api.train(data=tiny, steps=5, seed=42, n_samples=0)
    own = train_variant("mlp-bn", 5, 43, data=tiny)
    assert other_seed.splits == same.splits and own.splits != same.splits
    assert other_seed.train_cfg.split_seed == 42 and other_seed.losses != same.losses
    assert seeds.current_split_seed() is None  # reset after the block


# Aggregation (pure)


def seed_doc(values: dict, status: dict | None = None) -> dict:
    columns = [{"key": "variant", "header": "variant", "fmt": None}, {"key": "dev", "header": "dev", "fmt": "{:.4f}"},
               {"key": "ref", "header": "ref", "fmt": None}, {"key": "status", "header": "status", "fmt": None}]
    rows = [{"variant": k, "dev": v, "ref": 2.1, "status": (status or {}).get(k, "ok")} for k, v in values.items()]
    return {"experiment": "toy", "title": "Toy", "settings": {"steps": 1, "seed": 0}, "columns": columns, "rows": rows,
            "findings": ["seed finding"], "files": []}


def test_aggregate_summaries_comparisons_and_verdicts():
    docs = [seed_doc({"a": 2.0, "b": 1.90, "c": 1.91}), seed_doc({"a": 2.1, "b": 2.01, "c": 1.99}),
            seed_doc({"a": 2.2, "b": 2.09, "c": 2.12}, {"c": "diverged"})]
    result = aggregate.aggregate(docs, seeds.SeedPlan((1, 2, 3), 1))
    a = result.rows[0]["dev"]
    assert (a["mean"], a["n"], a["values"]) == (pytest.approx(2.1), 3, [2.0, 2.1, 2.2])
    assert a["ci_low"] < 2.1 < a["ci_high"] and a["std"] == pytest.approx(0.1)
    assert result.rows[0]["ref"] == 2.1  # a reference every seed gives alike stays a value
    assert result.rows[2]["status"] == "ok ×2; diverged ×1"
    b_vs_a, c_vs_b = result.comparisons
    assert (b_vs_a["a"], b_vs_a["b"], b_vs_a["n"]) == ("a", "b", 3)
    assert b_vs_a["diff_mean"] == pytest.approx(-0.1) and b_vs_a["verdict"] == "better, beyond seed noise"
    assert c_vs_b["verdict"] == "within seed noise"
    assert any("b vs a: dev -0.1000" in line for line in result.findings)
    assert not any("within seed noise" in line and "better" in line for line in result.findings)
    assert result.settings["seeds"] == [1, 2, 3] and "seed" not in result.settings


def test_aggregate_drops_missing_values_from_a_pair():
    docs = [seed_doc({"a": 2.0, "b": None}), seed_doc({"a": 2.1, "b": 2.0}), seed_doc({"a": 2.2, "b": 2.1})]
    result = aggregate.aggregate(docs, seeds.SeedPlan((1, 2, 3), 1))
    assert result.rows[1]["dev"]["n"] == 2 and result.rows[1]["seeds"] == 2 and result.comparisons[0]["n"] == 2


# The sweep, its tasks run in this process


def test_sweep_runs_every_setting_and_seed_as_a_run_directory(tiny, tmp_path, capsys):
    out = tmp_path / "sweep"
    result = run_sweep(spec(tiny, out), InProcess(), progress=False)
    capsys.readouterr()
    assert [r["setting"] for r in result.rows] == ["lr=0.05", "lr=0.1"]
    for row in result.rows:
        assert row["dev"]["n"] == 2 and row["dev"]["ci_low"] < row["dev"]["mean"] < row["dev"]["ci_high"]
        assert row["status"] == "ok"
    run = out / "runs" / "lr=0.1" / "seed-43"
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["seed"] == 43 and config["train"]["split_seed"] == 42 and config["train"]["lr"] == 0.1
    direct = api.train(data=tiny, steps=STEPS, seed=43, split_seed=42, lr=0.1, n_samples=0)
    assert final_record(run)["dev"] == direct.losses["dev"]  # an ordinary run, the same numbers
    assert result.comparisons[0]["a"] == "lr=0.05" and result.comparisons[0]["n"] == 2
    assert main(["eval", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dev"] == pytest.approx(direct.losses["dev"])


def test_rerun_skips_finished_runs_and_resumes_interrupted_ones(tiny, tmp_path, capsys):
    out = tmp_path / "sweep"
    first = run_sweep(spec(tiny, out), InProcess(), progress=False)
    unfinished = out / "runs" / "lr=0.1" / "seed-42"
    (unfinished / WEIGHTS).unlink()  # as a run killed after its last checkpoint
    (unfinished / SAMPLES).unlink()
    again = run_sweep(spec(tiny, out), InProcess(), progress=False)
    capsys.readouterr()
    was = {(r["setting"], r["seed"]): r["was"] for r in again.data["runs"]}
    assert was[("lr=0.1", 42)] == RESUMABLE
    assert [w for k, w in was.items() if k != ("lr=0.1", 42)] == [FINISHED] * 3
    assert "resumed_by" in json.loads((unfinished / "config.json").read_text())
    assert [r["dev"]["values"] for r in again.rows] == [r["dev"]["values"] for r in first.rows]
    more = run_sweep(spec(tiny, out, seeds_text="3"), InProcess(), progress=False)
    capsys.readouterr()
    assert sum(r["was"] == FRESH for r in more.data["runs"]) == 2 and more.rows[0]["dev"]["n"] == 3


def test_a_sweep_with_other_shared_settings_is_refused(tiny, tmp_path, capsys):
    out = tmp_path / "sweep"
    run_sweep(spec(tiny, out, seeds_text="1"), InProcess(), progress=False)
    with pytest.raises(CharlabError, match="holds another sweep .*steps"):
        run_sweep(spec(tiny, out, seeds_text="1", steps=STEPS + 1), InProcess(), progress=False)


def test_sweep_command_errors_are_one_line_and_touch_nothing(tmp_path, capsys):
    out = tmp_path / "never"
    for args, message in ((["--grid", "lrr=1"], "unknown --grid key 'lrr'; valid keys:"),
                          (["--grid", "lr=-1"], "setting base: --lr must be positive"),
                          (["--workers", "0"], "--workers must be at least 1"),
                          (["--executor", "dask"], "--executor dask needs --address"),
                          (["--seeds", "0"], "--seeds must be at least 1")):
        assert main(["sweep", *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not out.exists()


# Real worker processes (slow)


def sweep_cmd(tiny, out, *extra) -> list[str]:
    return [sys.executable, "-m", "charlab", "sweep", "--grid", "lr=0.05,0.1", "--seeds", "2", "--data", tiny,
            "--out", str(out), "--json", *extra]


def wait_for(condition, what: str, proc: subprocess.Popen | None = None) -> None:
    """Until ``condition()``; fails after ``WAIT_S`` or as soon as ``proc`` has exited without it."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert proc is None or proc.poll() is None, f"the sweep exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL_S)


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_two_workers_run_the_grid_and_a_crashed_worker_fails_only_its_run(tiny, tmp_path):
    out = tmp_path / "sweep"
    proc = subprocess.Popen(sweep_cmd(tiny, out, "--steps", "3000", "--workers", "2"), env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = out / "runs" / "lr=0.05" / "seed-43"
    wait_for(lambda: (victim / "checkpoints").is_dir(), "a run to start training", proc)
    pids = [p for p in children(proc.pid)
            if str(victim) in Path(f"/proc/{p}/cmdline").read_text().replace("\0", " ")]
    os.kill(pids[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, stderr
    doc = json.loads(stdout)
    runs = {(r["setting"], r["seed"]): r["status"] for r in doc["data"]["runs"]}
    assert runs.pop(("lr=0.05", 43)) == "failed: killed by SIGKILL"
    assert set(runs.values()) == {"ok"}
    assert doc["rows"][0]["dev"]["n"] == 1 and doc["rows"][1]["dev"]["n"] == 2
    assert "failed: killed by SIGKILL ×1" in doc["rows"][0]["status"]
    assert {"sweep.md", "sweep.json", "sweep-dev.png", "sweep-plan.json"} <= {p.name for p in out.iterdir()}


@pytest.mark.slow
def test_killed_sweep_leaves_no_process_and_resumes(tiny, tmp_path):
    out = tmp_path / "sweep"
    proc = subprocess.Popen(sweep_cmd(tiny, out, "--steps", "6000", "--workers", "1"), env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first, second = out / "runs" / "lr=0.05" / "seed-42", out / "runs" / "lr=0.05" / "seed-43"
    wait_for(lambda: final_record(first) is not None and (second / "checkpoints").is_dir(), "the second run", proc)
    running = children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 128 + signal.SIGTERM and "rerun the same command to resume" in stderr
    assert running and not any(alive(p) for p in running)
    finished_at = (first / WEIGHTS).stat().st_mtime_ns
    done = subprocess.run(sweep_cmd(tiny, out, "--steps", "6000", "--workers", "1"), env=cli_env(),
                          capture_output=True, text=True, timeout=WAIT_S * 2)
    assert done.returncode == 0, done.stderr
    was = {(r["setting"], r["seed"]): r["was"] for r in json.loads(done.stdout)["data"]["runs"]}
    assert was[("lr=0.05", 42)] == FINISHED and (first / WEIGHTS).stat().st_mtime_ns == finished_at
    assert was[("lr=0.05", 43)] == RESUMABLE and was[("lr=0.1", 42)] == FRESH
    direct = api.train(data=tiny, steps=6000, seed=43, split_seed=42, lr=0.05, n_samples=0)
    assert final_record(second)["dev"] == direct.losses["dev"]  # resumed exactly


@pytest.mark.slow
def test_pool_killed_outright_takes_its_workers_along(tiny, tmp_path):
    out = tmp_path / "sweep"
    proc = subprocess.Popen(sweep_cmd(tiny, out, "--steps", "20000", "--workers", "2"), env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(list(out.glob("runs/*/*/checkpoints"))) == 2, "two runs to train", proc)
    running = children(proc.pid)
    proc.kill()
    proc.wait()
    wait_for(lambda: not any(alive(p) for p in running), "the workers to stop")


@pytest.mark.slow
def test_dask_cluster_gives_the_local_pools_numbers(tiny, tmp_path):
    from distributed import LocalCluster

    local = run_sweep(spec(tiny, tmp_path / "local", seeds_text="1"), make_executor("local", 2), progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        executor = make_executor("dask", address=cluster.scheduler_address)
        remote = run_sweep(spec(tiny, tmp_path / "dask", seeds_text="1"), executor, progress=False)
    assert [r["dev"]["values"] for r in remote.rows] == [r["dev"]["values"] for r in local.rows]
    assert [r["train"]["values"] for r in remote.rows] == [r["train"]["values"] for r in local.rows]


@pytest.mark.slow
def test_experiment_over_seeds_json(tiny, tmp_path, run_cli):
    out = tmp_path / "ladder"
    done = run_cli("experiment", "init-ladder", "--steps", "50", "--seeds", "3", "--data", tiny, "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [r["rung"] for r in doc["rows"]] == ["original", "fix-softmax", "fix-tanh", "kaiming", "batchnorm"]
    for row in doc["rows"]:
        assert {"mean", "std", "ci_low", "ci_high", "n"} <= set(row["dev"]) and row["dev"]["n"] == 3
    assert len(doc["comparisons"]) == 4
    for c in doc["comparisons"]:
        assert {"a", "b", "diff_mean", "ci_low", "ci_high", "n", "verdict"} <= set(c)
        assert (c["verdict"] == "within seed noise") == (c["ci_low"] <= 0 <= c["ci_high"])
    assert doc["settings"]["seeds"] == [42, 43, 44] and doc["settings"]["split_seed"] == 42
    assert len(list((out / "seeds").glob("seed-*-split-42/init-ladder.json"))) == 3
    again = run_cli("experiment", "init-ladder", "--steps", "50", "--seeds", "3", "--data", tiny, "--out", out,
                    "--json")
    assert json.loads(again.stdout)["rows"] == doc["rows"]  # read back, and the same numbers


@pytest.mark.parametrize("argv,shown", [(["--help"], "sweep"), (["sweep", "--help"], "--address"),
                                        (["experiment", "--help"], "--seeds")])
def test_help_renders(argv, shown, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0 and shown in capsys.readouterr().out
