"""The lecture's experiments at small step counts: the qualitative results they must reproduce."""

from __future__ import annotations

import json
import math

import pytest

from charlab.cli.main import main
from charlab.data import read_items
from charlab.experiments import gain, init_ladder, lr, zero_init
from charlab.experiments.runner import write_outputs

SEED = 42
NAMES_STRIDE = 8  # every 8th embedded name (~4,000): the final evaluations of each variant stay cheap


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(read_items(None)[::NAMES_STRIDE]) + "\n", encoding="utf-8")
    return str(path)


def mean(values):
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def gain_result(names):
    return gain.run(steps=10, seed=SEED, data=names)


def init_rows(result, norm, activation):
    return {r["gain"]: r for r in result.rows if r["norm"] == norm and r["activation"] == activation
            and r["phase"] == "init"}


@pytest.mark.slow
def test_gain_tanh_saturation_and_stds(gain_result):
    rows = init_rows(gain_result, "none", "tanh")
    sat = {g: mean(r["saturation_pct"]) for g, r in rows.items()}
    assert sat["3"] > sat["5/3"] > sat["1"] > sat["0.5"]
    assert 25 < mean(rows["3"]["saturation_pct"][1:]) < 60  # lecture: gain 3 saturates ~40%
    assert 1 < mean(rows["5/3"]["saturation_pct"][1:]) < 10  # lecture: 5/3 keeps the deeper layers near 5%
    five_thirds, one = rows["5/3"]["act_std"], rows["1"]["act_std"]
    assert max(five_thirds[1:]) / min(five_thirds[1:]) < 1.2  # 5/3: steady past the first layer
    assert one[-1] < 0.6 * one[0]  # 1: shrinks layer by layer


@pytest.mark.slow
def test_gain_linear_only_explodes_at_five_thirds(gain_result):
    rows = init_rows(gain_result, "none", "none")
    growth = {g: r["act_std"][-1] / r["act_std"][0] for g, r in rows.items()}
    assert growth["5/3"] > (5 / 3) ** 3  # four more layers, each x5/3 (~7.7)
    assert 0.7 < growth["1"] < 1.4  # gain 1 keeps a linear stack steady
    stds = rows["5/3"]["act_std"]
    assert all(b > a for a, b in zip(stds, stds[1:]))


@pytest.mark.slow
def test_gain_hardly_matters_with_batchnorm(gain_result):
    for activation in gain.ACTIVATIONS:
        rows = init_rows(gain_result, "batchnorm", activation)
        for layer in range(5):
            stds = [r["act_std"][layer] for r in rows.values()]
            assert max(stds) - min(stds) < 0.02 * max(stds)
    tanh = init_rows(gain_result, "batchnorm", "tanh")
    assert max(mean(r["saturation_pct"]) for r in tanh.values()) < 10


@pytest.mark.slow
def test_gain_outputs(gain_result, tmp_path):
    paths = write_outputs(gain_result, tmp_path)
    names = {p.name for p in paths}
    assert {"gain.md", "gain.json", "gain-activations.png", "gain-activations.svg"} <= names
    doc = json.loads((tmp_path / "gain.json").read_text(), parse_constant=pytest.fail)  # no NaN/Infinity
    linear_3 = [r["phase"] for r in doc["rows"] if (r["norm"], r["activation"], r["gain"]) == ("none", "none", "3")]
    assert linear_3[1].startswith("diverged: non-finite loss")  # x3 per layer: the loss overflows in a few steps
    assert len(doc["rows"]) == 2 * len(gain.GAINS) * len(gain.NORMS) * len(gain.ACTIVATIONS)
    assert "| norm | activation | gain |" in (tmp_path / "gain.md").read_text()
    assert (tmp_path / "gain-saturation.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_init_ladder_pattern(names):
    rows = {r["rung"]: r for r in init_ladder.run(steps=200, seed=SEED, data=names).rows}
    uniform = rows["original"]["expected_step0"]
    assert rows["original"]["loss_step0"] > 5 * uniform  # lecture: ~27 instead of 3.3
    for rung in ("fix-softmax", "fix-tanh", "kaiming", "batchnorm"):
        assert rows[rung]["loss_step0"] == pytest.approx(uniform, abs=0.1)
        assert rows[rung]["dev"] < rows["original"]["dev"]
    assert rows["original"]["saturation_pct"] > 50
    assert rows["fix-tanh"]["saturation_pct"] < rows["fix-softmax"]["saturation_pct"] / 4
    assert rows["batchnorm"]["saturation_pct"] < rows["kaiming"]["saturation_pct"]


@pytest.mark.slow
def test_lr_recommends_update_data_near_1e_3(names):
    result = lr.run(steps=100, seed=SEED, data=names)
    medians = [r["median_log10"] for r in result.rows]
    assert all(math.isfinite(m) for m in medians)
    assert all(b > a for a, b in zip(medians, medians[1:]))  # update:data grows with the rate
    best = next(r for r in result.rows if r["recommended"])
    target = math.log10(lr.TARGET_UPDATE_DATA)
    assert abs(best["median_log10"] - target) == min(abs(m - target) for m in medians)
    assert abs(best["median_log10"] - target) < 0.5
    assert result.data["recommended_lr"] == best["lr"]


def test_zero_init_only_what_can_move_moves(names):
    result = zero_init.run(steps=200, seed=SEED, data=names)
    params = {p["param"]: p for p in result.rows}
    output_bias = f"layers.{max(int(n.split('.')[1]) for n in params)}.bias"  # the last Linear's bias
    assert params[output_bias]["moved"] > 0
    for name, p in params.items():
        if name != output_bias:
            assert p["max_abs_grad"] == 0 and p["moved"] == 0 and not p["ever_gradient"], name
    losses = result.data["losses"]
    assert losses["train"] >= losses["unigram_entropy"] - 1e-6  # an input-blind model cannot beat it
    assert losses["train"] < losses["loss_step0"] - 0.2  # but the output bias did learn the unigram
    text = " ".join(result.findings)
    assert "identical" in text and "exactly 0" in text and output_bias in text


@pytest.mark.slow
def test_experiment_command(names, tmp_path, capsys):
    out = tmp_path / "zero"
    assert main(["experiment", "zero-init", "--steps", "20", "--data", names, "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["experiment"] == "zero-init" and doc["settings"]["steps"] == 20
    assert {"zero-init.md", "zero-init.json", "zero-init-moved.png", "zero-init-moved.svg"} <= {
        p.name for p in out.iterdir()}
    assert main(["experiment", "zero-init", "--steps", "0", "--out", str(out)]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["experiment", "gain", "--out", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_one_seed_is_the_plain_experiment(names, tmp_path, capsys):
    """--seeds 1 trains in this process, as without it: the same rows, no comparisons, no seeds folder."""
    plain, seeded = tmp_path / "plain", tmp_path / "seeded"
    assert main(["experiment", "zero-init", "--steps", "20", "--data", names, "--out", str(plain), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["experiment", "zero-init", "--steps", "20", "--data", names, "--out", str(seeded), "--json",
                 "--seeds", "1"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["rows"] == before["rows"] and after["findings"] == before["findings"]
    assert "comparisons" not in after and not (seeded / "seeds").exists()
    assert [c["key"] for c in after["columns"]] == ["param", "ever_gradient", "max_abs_grad", "moved"]


def test_seed_flags_are_checked_before_training(tmp_path, capsys):
    out = tmp_path / "never"
    for args, message in ((["--seeds", "2", "--split-seed", "1"], "--split-seed is for one seed"),
                          (["--seeds", "x"], "--seeds takes a count"),
                          (["--seeds", "2", "--workers", "0"], "--workers must be at least 1")):
        assert main(["experiment", "zero-init", "--out", str(out), *args]) == 2
        assert message in capsys.readouterr().err
    assert not out.exists()
