"""What a newcomer's fresh install relies on: the README's test command is scripts/test and CI runs
exactly it; the metadata's Python floor matches the code (tomllib: 3.11); `charlab bench` finds the
lecture reference inside the installed package, not in a checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import charlab
from charlab.experiments import bench

ROOT = Path(__file__).resolve().parents[1]


def test_readme_test_command_is_scripts_test_and_ci_runs_exactly_it():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\nscripts/test\n" in readme
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert commands[-1] == "exec scripts/test"
    for script in (ROOT / "scripts" / "test", ROOT / ".ci" / "run"):
        assert os.access(script, os.X_OK), script
    text = (ROOT / "scripts" / "test").read_text()
    assert "CHARLAB_REQUIRE_BROWSER=1" in text and "apt-get" in text and "-m pytest" in text


def test_requires_python_matches_the_code():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floor = tuple(int(n) for n in re.search(r">=\s*(\d+)\.(\d+)", project["requires-python"]).groups())
    assert floor >= (3, 11)  # config.py imports tomllib, new in 3.11
    assert sys.version_info[:2] >= floor


def test_bench_reference_ships_in_the_package(tmp_path):
    path = bench.find_reference()
    assert path.is_file() and Path(charlab.__file__).parent in path.resolve().parents
    reference = bench.load_reference(path)
    assert reference.BLOCK_SIZE == 3 and callable(reference.load_data) and callable(reference.train)


@pytest.mark.slow  # a fresh interpreter importing torch
def test_bench_reference_loads_outside_a_checkout(tmp_path):
    done = subprocess.run([sys.executable, "-c", "from charlab.experiments import bench; "
                           "print(bench.load_reference(bench.find_reference()).__name__)"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "charlab.experiments.reference", done.stderr
