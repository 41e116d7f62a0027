"""The command line end to end: ``python -m charlab ...`` in temp dirs, as a user runs it.

One trained run (module scope) serves every command; bad input is checked for what a user sees:
one line on stderr, a non-zero exit, no traceback, nothing on disk created or changed. Each
subprocess pays ~2 s of imports, so the happy path and a few bad inputs run as real processes and
the rest of the bad inputs go through the same entry point in-process (``charlab.cli.main``), where
an escaping exception would fail the test just as a traceback would.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import pytest

from charlab.cli.main import main
from charlab.data import build_examples
from charlab.inference.evaluate import item_scores
from charlab.rundir import CHECKPOINT_DIR, CONFIG, METRICS, REQUIRED, SAMPLES, VOCAB, WEIGHTS, load_run, read_metrics
from charlab.inference.sample import sample_texts

CLI_STEPS = 200  # enough to move off the uniform prediction; a couple of seconds
NOVELTY_SAMPLES = 300  # enough that some samples are real names (in a split) and some new
NOVELTY = {"new", "train", "dev", "test"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, run_cli):
    """``charlab train --steps 200 --json`` on the embedded names: (run dir, parsed summary)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = run_cli("train", "--out", out, "--steps", CLI_STEPS, "--samples", 5, "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def one_json(proc):
    """The command succeeded and its stdout is exactly one JSON document."""
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def run_main(capsys, *argv) -> subprocess.CompletedProcess:
    """``charlab ARGV`` in this process: exit code, stdout and stderr as a subprocess would give."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(argv), code, captured.out, captured.err)


def snapshot(folder) -> dict:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_line_error(proc, pattern: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert proc.stdout == ""


# --- the happy path ----------------------------------------------------------------------------


def test_train_json_and_run_dir(trained):
    out, summary = trained
    for name in (*REQUIRED, METRICS, SAMPLES):
        assert (out / name).is_file(), name
    assert summary["run"] == str(out) and summary["steps"] == CLI_STEPS and summary["vocab_size"] == 27
    assert abs(summary["loss_step0"] - summary["expected_init_loss"]) < 0.1
    assert summary["expected_init_loss"] == pytest.approx(math.log(27))
    assert set(summary["losses"]) == {"train", "dev", "test"}
    assert all(v < summary["loss_step0"] for v in summary["losses"].values())
    assert len(summary["samples"]) == 5 and all(s["novelty"] in NOVELTY for s in summary["samples"])
    assert json.loads((out / SAMPLES).read_text(encoding="utf-8")) == summary["samples"]
    config = json.loads((out / CONFIG).read_text(encoding="utf-8"))
    assert config["train"]["steps"] == CLI_STEPS and config["model"]["bn_momentum"] == 0.001
    records = read_metrics(out)
    assert sum(r["event"] == "train" for r in records) == CLI_STEPS
    assert [r for r in records if r["event"] == "final"][0]["dev"] == summary["losses"]["dev"]


@pytest.mark.slow
def test_eval_json_matches_training(trained, run_cli):
    out, summary = trained
    losses = one_json(run_cli("eval", out, "--json"))
    assert set(losses) == {"train", "dev", "test"}
    for split, value in losses.items():
        assert value == pytest.approx(summary["losses"][split], rel=1e-5)


@pytest.mark.slow
def test_sample_json_novelty_labels(trained, run_cli):
    out, _ = trained
    samples = one_json(run_cli("sample", out, "-n", NOVELTY_SAMPLES, "--seed", 3, "--json"))
    assert len(samples) == NOVELTY_SAMPLES
    splits = json.loads((out / "splits.json").read_text(encoding="utf-8"))
    for s in samples:
        expected = next((k for k in ("train", "dev", "test") if s["text"] in splits[k]), "new")
        assert s["novelty"] == expected, s
    labels = {s["novelty"] for s in samples}
    assert "new" in labels and "train" in labels
    loaded = load_run(out)  # the same seed in-process gives the same samples
    assert sample_texts(loaded.model, loaded.vocab, loaded.splits, NOVELTY_SAMPLES, 3) == samples


@pytest.mark.slow
def test_sample_prefix_top_k_temperature(trained, run_cli):
    out, _ = trained
    greedy = one_json(run_cli("sample", out, "-n", 4, "--prefix", "em", "--top-k", 1, "--temperature", 0.5, "--json"))
    assert len(greedy) == 4 and all(s["text"].startswith("em") for s in greedy)
    assert len({s["text"] for s in greedy}) == 1  # top-1 is deterministic: every sample the same



def test_sample_text_mode(trained, capsys):
    text = run_main(capsys, "sample", trained[0], "-n", 3, "--seed", 7)
    assert text.returncode == 0 and len(text.stdout.splitlines()) == 3


@pytest.mark.slow
def test_score_json_and_text(trained, run_cli, capsys):
    out, _ = trained
    rows = one_json(run_cli("score", out, "emma", "zzzzq", "--json"))
    assert [r["word"] for r in rows] == ["emma", "zzzzq"]
    assert 0 < rows[0]["nll_per_char"] < rows[1]["nll_per_char"]
    text = run_main(capsys, "score", out, "emma")
    assert text.returncode == 0 and text.stdout.split()[1] == "emma"
    assert float(text.stdout.split()[0]) == pytest.approx(rows[0]["nll_per_char"], abs=1e-4)


@pytest.mark.slow
def test_overwrite_replaces_the_run(trained, run_cli, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(trained[0], out)
    summary = one_json(run_cli("train", "--out", out, "--overwrite", "--steps", 20, "--samples", 0, "--json"))
    assert summary["steps"] == 20
    records = read_metrics(out)
    assert sum(r["event"] == "final" for r in records) == 1  # the old run's metrics are gone
    assert sum(r["event"] == "train" for r in records) == 20


def test_train_help_names_the_stable_flags(capsys):
    proc = run_main(capsys, "train", "--help")
    assert proc.returncode == 0
    for flag in ("--data", "--out", "--preset", "--steps", "--batch-size", "--lr", "--seed", "--json"):
        assert flag in proc.stdout


# --- bad input ---------------------------------------------------------------------------------

BAD_DATA = {
    "missing": (None, "does not exist"),
    "empty": (b"", "no items"),
    "blank-lines": (b"\n  \r\n\t\n\n", "no items"),
    "not-utf8": (b"emma\n\xff\xfe\xfa\n", "not valid UTF-8"),
    "single-item": (b"emma\n", "at least 2"),
}


SUBPROCESS_CASES = {"missing", "not-utf8"}  # the rest in-process (see the module docstring)


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SUBPROCESS_CASES else c
                                  for c in sorted(BAD_DATA)])
def test_bad_data_file(case, run_cli, capsys, tmp_path):
    content, pattern = BAD_DATA[case]
    data = tmp_path / "words.txt"
    if content is not None:
        data.write_bytes(content)
    out = tmp_path / "run"
    argv = ("train", "--data", data, "--out", out, "--steps", 5, "--json")
    proc = run_cli(*argv) if case in SUBPROCESS_CASES else run_main(capsys, *argv)
    assert_one_line_error(proc, pattern)
    assert not out.exists()
    assert content is None or data.read_bytes() == content


BAD_FLAGS = {
    "unknown-preset": (["--preset", "nope"], r"unknown preset 'nope'.*mlp-bn"),
    "lr-zero": (["--lr", "0"], r"--lr must be positive"),
    "lr-negative": (["--lr", "-0.1"], r"--lr must be positive"),
    "batch-zero": (["--batch-size", "0"], r"--batch-size must be at least 1"),
    "block-zero": (["--block-size", "0"], r"--block-size must be at least 1"),
    "steps-negative": (["--steps", "-1"], r"--steps must not be negative"),
    "steps-not-a-number": (["--steps", "many"], r"--steps.*invalid int"),
    "batch-one-with-batchnorm": (["--batch-size", "1"], r"--batch-size must be at least 2 with BatchNorm"),
    "length-buckets-on-windows": (["--length-buckets", "4"], r"--length-buckets .* sequence models"),
    "members-zero": (["--members", "0"], r"--members must be at least 1"),
    "batch-below-members": (["--members", "4", "--batch-size", "3"], r"--batch-size must be at least --members"),
    "recurrent-dropout-one": (["--preset", "lstm", "--recurrent-dropout", "1"], r"--recurrent-dropout must be in"),
}


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_numbers_and_preset(case, capsys, tmp_path):
    flags, pattern = BAD_FLAGS[case]
    out = tmp_path / "run"
    assert_one_line_error(run_main(capsys, "train", "--out", out, *flags), pattern)
    assert not out.exists()


@pytest.mark.slow
def test_run_dir_missing_subprocess(run_cli, tmp_path):
    assert_one_line_error(run_cli("sample", tmp_path / "nope", "--json"), "does not exist")


@pytest.mark.parametrize("command", [["sample"], ["eval", "--json"], ["score", "emma"]])
def test_run_dir_missing(command, capsys, tmp_path):
    assert_one_line_error(run_main(capsys, command[0], tmp_path / "nope", *command[1:]), "does not exist")


@pytest.mark.parametrize("lacking,command", [(WEIGHTS, ["sample"]), (VOCAB, ["eval"]), (CONFIG, ["score", "emma"])])
def test_run_dir_lacking_files(trained, capsys, tmp_path, lacking, command):
    run = tmp_path / "partial"
    shutil.copytree(trained[0], run)
    (run / lacking).unlink()
    shutil.rmtree(run / CHECKPOINT_DIR)  # with a checkpoint, a run without final weights still loads
    before = snapshot(run)
    assert_one_line_error(run_main(capsys, command[0], run, *command[1:]), f"lacks {lacking}")
    assert snapshot(run) == before


def test_non_empty_out_without_overwrite_is_untouched(trained, capsys, tmp_path):
    out = tmp_path / "taken"
    shutil.copytree(trained[0], out)
    (out / "keep.txt").write_bytes(b"precious \x00 bytes\n")
    before = snapshot(out)
    assert_one_line_error(run_main(capsys, "train", "--out", out, "--steps", 5), "not empty.*--overwrite")
    assert snapshot(out) == before


def test_temperature_sharpens_samples(trained):
    """Colder samples are likelier under the model: lower mean NLL per character than hot ones."""
    loaded = load_run(trained[0])

    def mean_score(temperature: float) -> float:
        texts = [s["text"] for s in sample_texts(loaded.model, loaded.vocab, loaded.splits, 200, 5, temperature)]
        examples = build_examples([t for t in texts if t], loaded.vocab, "window", loaded.model_cfg.block_size)
        return item_scores(loaded.model, examples, len([t for t in texts if t])).mean().item()

    assert mean_score(0.3) < mean_score(1.0) < mean_score(3.0)


BAD_SAMPLE_FLAGS = {
    "n-zero": (["sample", "-n", "0"], r"-n must be at least 1"),
    "temperature-zero": (["sample", "--temperature", "0"], r"--temperature must be positive"),
    "top-k-zero": (["sample", "--top-k", "0"], r"--top-k must be at least 1"),
    "prefix-unknown-char": (["sample", "--prefix", "é"], r"outside the vocabulary"),
    "score-unknown-char": (["score", "--json"], r"outside the run's vocabulary"),
}


@pytest.mark.parametrize("case", sorted(BAD_SAMPLE_FLAGS))
def test_bad_sample_and_score_input(case, trained, capsys):
    argv, pattern = BAD_SAMPLE_FLAGS[case]
    words = ["zoé"] if argv[0] == "score" else []
    assert_one_line_error(run_main(capsys, argv[0], trained[0], *argv[1:], *words), pattern)


@pytest.mark.slow
def test_train_text_mode_prints_init_loss_losses_and_samples(capsys, tmp_path):
    proc = run_main(capsys, "train", "--out", tmp_path / "run", "--steps", 20, "--samples", 3)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"loss at step 0: 3\.\d{4} \(expected -ln\(1/27\) = 3\.2958\)", proc.stdout)
    assert re.search(r"train \d\.\d{4}\s+dev \d\.\d{4}\s+test \d\.\d{4}", proc.stdout)
    assert len([line for line in proc.stdout.splitlines() if line.startswith("  ")]) == 3


def strict_json(text: str):
    """Parse as standard JSON: NaN and Infinity are not JSON (``json.loads`` would accept them)."""
    def reject(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=reject)


def test_json_is_strict_when_a_split_is_empty(write_words, capsys, tmp_path):
    """Two items give an empty dev split: its loss is reported as null, never as NaN."""
    out = tmp_path / "run"
    proc = run_main(capsys, "train", "--data", write_words(["ab", "cd"]), "--out", out, "--steps", 5,
                    "--samples", 1, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = strict_json(proc.stdout)
    assert summary["losses"]["dev"] is None and summary["losses"]["train"] > 0
    losses = strict_json(run_main(capsys, "eval", out, "--json").stdout)
    assert losses["dev"] is None and losses["test"] > 0
