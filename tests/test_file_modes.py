"""Run files follow the umask, as files made by ``open()`` do (0644 under the usual umask 022), not
the 0600 of a ``tempfile.mkstemp`` temporary file renamed into place."""

from __future__ import annotations

import os
import stat

import pytest
import torch

import charlab
from charlab.rundir import atomic_save_tensors, atomic_write_bytes, atomic_write_json


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the previous one comes back after."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    atomic_write_json(tmp_path / "b.json", {"a": 1})
    atomic_save_tensors(tmp_path / "c.safetensors", {"w": torch.zeros(2)})
    atomic_write_bytes(tmp_path / "a.bin", b"y")  # replacing a file: the new one follows the umask too
    for name in ("a.bin", "b.json", "c.safetensors"):
        assert mode(tmp_path / name) == expected, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.json", "c.safetensors"]  # no temporaries


def test_every_file_of_a_run_follows_the_umask(tmp_path, umask):
    umask(0o022)
    out = tmp_path / "run"
    charlab.train(steps=20, eval_interval=10, n_hidden=8, out=out, n_samples=2)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 6
    assert {p.relative_to(out).as_posix(): mode(p) for p in files} == {
        p.relative_to(out).as_posix(): 0o644 for p in files}
