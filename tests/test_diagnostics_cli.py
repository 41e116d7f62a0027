"""`charlab train --diagnose`, `charlab diagnose RUN` and `charlab compare A B`, end to end on tiny runs."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess

import pytest

from charlab.cli.main import main

TINY = ("--steps", "30", "--eval-interval", "1000", "--samples", "0", "--json")

pytestmark = pytest.mark.slow  # every test here shares a module run of `charlab train --diagnose`


def run_cli(*args) -> subprocess.CompletedProcess:
    """``charlab ARGS`` in this process (no interpreter start-up per call); stdout, stderr and status."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    naive = run_cli("train", "--preset", "mlp", "--out", root / "naive", "--diagnose", *TINY)
    assert naive.returncode == 0, naive.stderr
    bn = run_cli("train", "--preset", "mlp-bn", "--out", root / "bn", *TINY)
    assert bn.returncode == 0, bn.stderr
    return root


def test_train_diagnose_writes_records_into_the_run_dir(runs):
    lines = (runs / "naive" / "diagnostics.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["kind"] for line in lines]
    assert kinds[0] == "meta" and "step" in kinds and "init" in kinds
    assert "probe" not in kinds  # the full pass is left to `charlab diagnose`
    assert not (runs / "bn" / "diagnostics.jsonl").exists()


@pytest.mark.slow
def test_diagnose_json_prints_verdicts_and_writes_figures(runs):
    before = (runs / "bn" / "model.safetensors").read_bytes()
    out = run_cli("diagnose", runs / "bn", "--steps", "5", "--json")
    assert out.returncode == 0, out.stderr
    verdicts = json.loads(out.stdout)
    assert all(set(v) == {"rule", "status", "layer", "value", "threshold", "cause", "fix"} for v in verdicts)
    by_rule = {v["rule"]: v["status"] for v in verdicts}
    assert by_rule["loss at init"] == "pass" and by_rule["saturation"] == "pass"
    assert (runs / "bn" / "figures" / "activations.png").is_file()
    assert (runs / "bn" / "figures" / "saturation_map.svg").is_file()
    assert json.loads((runs / "bn" / "verdicts.json").read_text()) == verdicts
    assert (runs / "bn" / "model.safetensors").read_bytes() == before  # the probe never touches the weights
    table = run_cli("diagnose", runs / "naive", "--steps", "3")
    assert table.returncode == 0 and "FAIL" in table.stdout and "fix:" in table.stdout


def test_compare_json_side_by_side(runs):
    out = run_cli("compare", runs / "naive", runs / "bn", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    numbers = {n["quantity"]: n for n in doc["numbers"]}
    assert numbers["loss at init"]["a"] > 10 > numbers["loss at init"]["b"]
    assert numbers["Tanh#1 saturated fraction"]["a"] > numbers["Tanh#1 saturated fraction"]["b"]
    verdicts = {(v["rule"], v["layer"]): v for v in doc["verdicts"]}
    assert verdicts[("loss at init", None)]["a"] == "fail" and verdicts[("loss at init", None)]["b"] == "pass"
    text = run_cli("compare", runs / "naive", runs / "bn")
    assert text.returncode == 0 and "Tanh#1 saturated fraction" in text.stdout


def test_errors_are_one_line(runs, tmp_path):
    missing = run_cli("compare", runs / "naive", tmp_path)
    assert missing.returncode == 2 and "charlab diagnose" in missing.stderr and "Traceback" not in missing.stderr
    bad = run_cli("diagnose", runs / "bn", "--steps", "0")
    assert bad.returncode == 2 and "--steps" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
