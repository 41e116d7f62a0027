"""Shared fixtures: one CPU thread, word-list files in a temp dir, the embedded names, a CLI runner.

Keep fixtures here generic (any test file may use them); a fixture only one file needs lives there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from charlab.data import read_items

TEST_THREADS = 1  # the machine is shared; one thread also makes float sums reproducible
CLI_TIMEOUT_S = 120  # a hung subprocess fails its test instead of the whole suite


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(TEST_THREADS)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def write_words(tmp_path):
    """``write_words(lines or bytes, name="words.txt") -> Path``: a word-list file in ``tmp_path``.

    A list of strings is joined with ``\\n`` and encoded as UTF-8; ``bytes`` are written as given
    (for BOM, CRLF and invalid-UTF-8 cases).
    """

    def write(content: list[str] | str | bytes, name: str = "words.txt") -> Path:
        path = tmp_path / name
        if isinstance(content, list):
            content = "\n".join(content) + "\n"
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
        return path

    return write


@pytest.fixture(scope="session")
def names() -> list[str]:
    """The embedded names list (32,033 names), read once per session."""
    return read_items(None)


def cli_env() -> dict[str, str]:
    """The environment for ``python -m charlab`` subprocesses: one thread, no colour, UTF-8 stdio."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(TEST_THREADS), PYTHONIOENCODING="utf-8", NO_COLOR="1")
    return env


@pytest.fixture(scope="session")
def run_cli():
    """``run_cli(*args, cwd=None) -> CompletedProcess``: ``python -m charlab ARGS`` with text output."""

    def run(*args, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "charlab", *map(str, args)], cwd=cwd, env=cli_env(),
                              capture_output=True, text=True, encoding="utf-8", timeout=CLI_TIMEOUT_S)

    return run
