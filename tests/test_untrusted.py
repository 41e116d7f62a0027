"""Untrusted files and data: loading never runs code, damaged runs fail with one line, data is
escaped wherever it is shown."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from charlab import api
from charlab.training.checkpoint import checkpoint_path
from charlab.cli.main import main
from charlab.report.escape import html_text, markdown_cell, terminal
from charlab.rundir.integrity import looks_like_pickle, read_head
from charlab.rundir import CONFIG, METRICS, VOCAB, WEIGHTS, load_weights, read_metrics

STEPS = 40
EVAL_INTERVAL = 20
READERS = {  # every way charlab reads a run directory, as the CLI runs it
    "sample": ["sample", "{run}", "-n", "2"],
    "eval": ["eval", "{run}"],
    "score": ["score", "{run}", "emma"],
    "resume": ["train", "--resume", "{run}", "--samples", "0"],
}
READ_BY = {  # which readers must refuse each file; the others do not open it
    CONFIG: {"sample", "eval", "score", "resume"}, VOCAB: {"sample", "eval", "score", "resume"},
    "splits.json": {"sample", "eval", "score", "resume"}, WEIGHTS: {"sample", "eval", "score"},
    "checkpoints/last.safetensors": {"resume"}, METRICS: {"resume"},
}
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("untrusted") / "run"
    api.train(out=run, preset="mlp", steps=STEPS, eval_interval=EVAL_INTERVAL, n_samples=2)
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def fingerprint(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def cli(capsys, args: list[str], run: Path) -> tuple[int, str]:
    rc = main([a.format(run=run) for a in args])
    return rc, capsys.readouterr().err


def assert_one_line_error(rc: int, err: str, *words: str) -> None:
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err


class Payload:
    """Unpickling this runs ``touch MARKER``: the file must never appear."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", [0, pickle.HIGHEST_PROTOCOL])
def test_a_pickle_in_place_of_any_run_file_is_refused_and_never_run(run, tmp_path, capsys, protocol):
    marker = tmp_path / "pwned"
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    assert set(READ_BY) <= set(files)
    for name in files:
        original = (run / name).read_bytes()
        (run / name).write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
        before = fingerprint(run)
        for reader, args in READERS.items():
            rc, err = cli(capsys, args, run)
            if reader in READ_BY.get(name, ()):
                assert_one_line_error(rc, err, Path(name).name)
                if protocol >= 2:
                    assert "pickle" in err
            else:
                assert rc in (0, 2) and "Traceback" not in err
            assert not marker.exists()
            if rc != 0:
                assert fingerprint(run) == before, f"{reader} changed the run after refusing {name}"
        (run / name).write_bytes(original)
    assert not marker.exists()


def test_read_metrics_refuses_a_pickle(run, tmp_path):
    (run / METRICS).write_bytes(pickle.dumps(Payload(tmp_path / "pwned")))
    with pytest.raises(Exception, match="pickle"):
        read_metrics(run)
    assert not (tmp_path / "pwned").exists()


def test_a_safetensors_header_length_starting_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    """One header length in 256 has 0x80, a pickle's first byte, as its low byte: such weights load."""
    tensors = {"w": torch.arange(3.0)}
    for pad in range(256):
        data = save({"w": tensors["w"]}, metadata={"pad": "x" * pad})
        if data[0] == 0x80:
            break
    path = tmp_path / "w.safetensors"
    path.write_bytes(data)
    assert looks_like_pickle(pickle.dumps(tensors, protocol=2)) and looks_like_pickle(pickle.dumps(tensors))
    assert not looks_like_pickle(read_head(path))
    assert torch.equal(load_weights(path)["w"], tensors["w"])


@pytest.mark.parametrize("target", [WEIGHTS, "checkpoints/last.safetensors"])
@pytest.mark.parametrize("damage", ["truncate", "flip-data", "flip-header", "empty"])
def test_damaged_weights_are_one_line_errors(run, capsys, target, damage):
    path = run / target
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "flip-data":
        data[-5] ^= 0xFF  # a byte of the last tensor: only the stored checksum can tell
    elif damage == "flip-header":
        data[10] ^= 0xFF
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    reader = READERS["resume"] if "checkpoints" in target else READERS["sample"]
    rc, err = cli(capsys, reader, run)
    assert_one_line_error(rc, err, path.name)


def edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


@pytest.mark.parametrize("reader", ["sample", "resume"])
def test_vocabulary_that_does_not_match_the_weights(run, capsys, reader):
    edit_json(run / VOCAB, lambda d: d["chars"].pop())
    rc, err = cli(capsys, READERS[reader], run)
    assert_one_line_error(rc, err, "vocab.json")


@pytest.mark.parametrize("reader", ["sample", "resume"])
def test_consistent_config_and_vocabulary_that_do_not_match_the_weights(run, capsys, reader):
    edit_json(run / VOCAB, lambda d: d["chars"].pop())
    edit_json(run / CONFIG, lambda d: d["model"].update(vocab_size=d["model"]["vocab_size"] - 1))
    rc, err = cli(capsys, READERS[reader], run)
    assert_one_line_error(rc, err, "do not match" if reader == "resume" else "does not match")


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(format_version=99), ("format version 99",)),
    (lambda d: d.pop("format_version"), ("format version None",)),
    (lambda d: d["model"].update(n_embd="ten"), ("config.json",)),
    (lambda d: d["train"].update(steps=-5), ("--steps",)),
    (lambda d: d["model"].update(surprise=1), ("surprise",)),
])
def test_bad_config_is_one_line_error(run, capsys, change, words):
    edit_json(run / CONFIG, change)
    for reader in ("sample", "resume"):
        rc, err = cli(capsys, READERS[reader], run)
        assert_one_line_error(rc, err, *words)


def test_unknown_checkpoint_format_version(run, capsys):
    from safetensors.torch import load, save
    path = checkpoint_path(run)
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8:8 + n])["__metadata__"]
    path.write_bytes(save(load(data), metadata={**meta, "format_version": "99"}))
    rc, err = cli(capsys, READERS["resume"], run)
    assert_one_line_error(rc, err, "format version '99'")


@pytest.mark.slow
def test_damaged_run_through_the_real_cli_has_no_traceback(run, run_cli):
    (run / WEIGHTS).write_bytes(b"\x00" * 7)
    proc = run_cli("sample", run)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and WEIGHTS in proc.stderr


def test_escaping_helpers():
    assert "<" not in html_text(XSS) and html_text(XSS) == "&lt;img src=x onerror=alert(1)&gt;"
    assert "<" not in markdown_cell(XSS)
    cell = markdown_cell("a|b\nc")
    assert "\n" not in cell and "|" not in cell.replace("\\|", "")
    shown = terminal("ab\x1b[2J\x07\u202ecd\r\n\\")
    assert all(ord(ch) >= 0x20 and ch != "\u202e" for ch in shown)
    assert shown == "ab\\x1b[2J\\x07\\u202ecd\\x0d\\x0a\\\\"
    assert terminal("émile 日本 😀") == "émile 日本 😀"


def test_cli_output_escapes_data(tmp_path, write_words, capsys):
    hostile = ["\x1b[2Jab", XSS, "ab\u202eba", "abba", "baab", "aabb", "bbaa", "abab", "baba", "ba"]
    data = write_words(hostile)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--preset", "mlp", "--steps", "20", "--eval-interval", "10",
                 "--out", str(run), "--samples", "5"]) == 0
    assert main(["score", str(run), "\x1b[2Jab", "ab\u202eba"]) == 0
    assert main(["sample", str(run), "-n", "30"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\\x1b[2Jab" in out
