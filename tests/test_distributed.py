"""`torchrun --nproc_per_node=2 -m charlab train` (gloo, CPU) takes the very steps one process takes on
the same global batch: per-step losses, final weights and BatchNorm running statistics agree within
1e-5 (the oracle is `charlab.train` in this process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import charlab
from charlab.rundir import METRICS, REQUIRED, SAMPLES
from charlab.training.events import Observer

pytestmark = pytest.mark.slow  # torchrun: two processes importing torch

PROCESSES = 2
TOLERANCE = 1e-5  # float32 sums taken in another order (two half-batches, all-reduced) round differently
SETTINGS = {"steps": 40, "n_hidden": 32, "batch_size": 32, "eval_interval": 1000, "device": "cpu"}
LAUNCH_TIMEOUT_S = 240  # two Python processes importing torch on a busy 2-core machine


def flags(settings: dict) -> list[str]:
    return [part for key, value in settings.items() for part in ("--" + key.replace("_", "-"), str(value))]


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={PROCESSES}",
         "-m", "charlab", "train", *flags(SETTINGS), "--samples", "3", "--out", str(out), "--json"],
        capture_output=True, text=True, env=env, timeout=LAUNCH_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


class StepLosses(Observer):
    def __init__(self):
        self.losses: list[float] = []

    def on_step_end(self, view, step, loss):
        self.losses += view.losses(view.chunk_start, view.step).tolist()  # every step since the last event


@pytest.fixture(scope="module")
def single():
    torch.set_num_threads(1)
    keep = StepLosses()
    result = charlab.train(n_samples=3, observers=[keep], **SETTINGS)
    result.step_losses = keep.losses
    return result


def test_losses_match_single_process(launched, single):
    out, _ = launched
    records = [json.loads(line) for line in (out / METRICS).read_text().splitlines()]
    ddp_losses = torch.tensor([r["loss"] for r in records if r["event"] == "train"], dtype=torch.float64)
    (final,) = [r for r in records if r["event"] == "final"]
    ref = single.summary()
    assert len(ddp_losses) == SETTINGS["steps"]
    assert ddp_losses[0] == pytest.approx(ref["loss_step0"], abs=TOLERANCE)
    assert float(ddp_losses[-1]) != pytest.approx(float(ddp_losses[0]), abs=0.05)  # it did train
    for split in ("train", "dev", "test"):
        assert final[split] == pytest.approx(ref["losses"][split], abs=TOLERANCE)


def test_every_step_loss_matches(launched, single):
    out, _ = launched
    records = [json.loads(line) for line in (out / METRICS).read_text().splitlines()]
    ddp_losses = [r["loss"] for r in records if r["event"] == "train"]
    assert max(abs(a - b) for a, b in zip(ddp_losses, single.step_losses, strict=True)) < TOLERANCE


def test_final_parameters_and_batchnorm_statistics_match(launched, single):
    out, _ = launched
    saved = load_file(str(out / "model.safetensors"))
    reference = single.model.state_dict()
    assert set(saved) == set(reference)
    assert any("running_var" in k for k in saved)  # the model has a BatchNorm: the synced statistics
    for name, value in reference.items():
        assert torch.allclose(saved[name].double(), value.double(), atol=TOLERANCE, rtol=0), name


def test_only_rank_zero_writes_and_prints(launched, single):
    out, stdout = launched
    assert json.loads(stdout)["samples"] == single.samples  # exactly one JSON document on stdout
    assert {*REQUIRED, METRICS, SAMPLES} <= {p.name for p in out.iterdir()}
    records = (out / METRICS).read_text().splitlines()
    assert len([r for r in records if '"event": "final"' in r]) == 1


def test_sync_stats_in_a_one_process_group_is_torch_batchnorm(tmp_path):
    """The all-reduced sum / sum of squares / count path (a gloo group of one) gives the outputs,
    input gradients and running statistics of torch.nn.BatchNorm1d."""
    import torch.distributed as dist

    from charlab.nn.batchnorm import BatchNorm1d
    from charlab.training.distributed import SyncStats

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        gen = torch.Generator().manual_seed(0)
        x = (torch.randn(32, 8, generator=gen, dtype=torch.float64) * 3 + 1).requires_grad_()  # (B, C)
        x_ref = x.detach().clone().requires_grad_()
        ours = BatchNorm1d(8, dtype=torch.float64)
        ours.stats_reducer = SyncStats()
        ref = torch.nn.BatchNorm1d(8, dtype=torch.float64)
        weights = torch.randn(32, 8, generator=gen, dtype=torch.float64)  # (B, C) a loss that mixes channels
        (ours(x) * weights).sum().backward()
        (ref(x_ref) * weights).sum().backward()
        assert torch.allclose(x.grad, x_ref.grad, atol=1e-10)
        assert torch.allclose(ours.running_mean, ref.running_mean, atol=1e-12)
        assert torch.allclose(ours.running_var, ref.running_var, atol=1e-12)
    finally:
        dist.destroy_process_group()
