"""The examples in examples/ run as documented (the Python API a notebook uses), and what they print
agrees with the files they write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.image import imread

from charlab.rundir import read_metrics

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STEPS = 300  # enough for every figure and verdict to have data; a few seconds
TIMEOUT_S = 300  # a generous bound for a busy 2-core machine


@pytest.mark.slow
def test_notebook_api_example(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(EXAMPLES / "notebook_api.py"), "--steps", str(STEPS), "--out", str(out)],
                          capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    final = [r for r in read_metrics(out) if r["event"] == "final"][-1]
    assert summary["losses"] == {k: final[k] for k in ("train", "dev", "test")}
    assert summary["verdicts"] >= 5
    for name in summary["figures"]:
        image = imread(out / f"{name}.png")  # (H, W, 4): a real, decodable PNG
        assert image.shape[0] > 100 and image.shape[1] > 100
    report = Path(summary["report"]).read_text(encoding="utf-8")
    assert "Diagnostics" in report and "Samples" in report
