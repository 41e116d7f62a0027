"""BatchNorm folding: the folded model against the unfolded one (the oracle), refusals, the command."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import charlab
from charlab.nn.batchnorm import BatchNorm1d
from charlab.cli.main import main
from charlab.data import build_examples
from charlab.errors import CharlabError
from charlab.inference.fold import count_batchnorms, fold_batchnorm
from charlab.nn.layers import Embedding, FlattenConsecutive, Linear, Sequential, Tanh
from charlab.rundir import load_run

TRAIN_STEPS = 200  # enough for running statistics far from their (0, 1) start
FLOAT32_RTOL = 1e-5
FLOAT64_RTOL = 1e-10


@pytest.fixture(scope="module")
def deep_bn(tmp_path_factory):
    """The lecture's deep net (5 x Linear -> BatchNorm -> tanh), briefly trained, saved as a run."""
    out = tmp_path_factory.mktemp("runs") / "deep-bn"
    charlab.train(preset="deep-bn", steps=TRAIN_STEPS, eval_interval=TRAIN_STEPS, n_samples=0, out=out)
    return out


def relative_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max() / a.detach().abs().max())


def random_stats(norm: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        norm.running_mean.normal_(0.0, 2.0, generator=generator)
        norm.running_var.uniform_(0.1, 5.0, generator=generator)
        if norm.affine:
            norm.weight.normal_(1.0, 0.5, generator=generator)
            norm.bias.normal_(0.0, 0.5, generator=generator)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("layers", ["charlab", "torch"])
def test_fold_matches_unfolded_pair(bias, affine, layers):
    g = torch.Generator().manual_seed(0)
    lin_cls, bn_cls, seq_cls = ((Linear, BatchNorm1d, Sequential) if layers == "charlab"
                                else (nn.Linear, nn.BatchNorm1d, nn.Sequential))
    linear, norm = lin_cls(7, 5, bias=bias, dtype=torch.float64), bn_cls(5, affine=affine, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.normal_(generator=g)
        if bias:
            linear.bias.normal_(generator=g)
    random_stats(norm, g)
    model = seq_cls(linear, norm, nn.Tanh()).eval()
    folded = fold_batchnorm(model)
    x = torch.randn(64, 7, generator=g, dtype=torch.float64)  # (B, in)
    assert count_batchnorms(folded) == 0 and len(folded) == 2
    assert folded[0].bias is not None
    assert relative_diff(model(x), folded(x)) < FLOAT64_RTOL
    scale = (norm.weight if affine else 1.0) / torch.sqrt(norm.running_var + norm.eps)  # (out,)
    expected_bias = ((linear.bias if bias else 0.0) - norm.running_mean) * scale + (norm.bias if affine else 0.0)
    torch.testing.assert_close(folded[0].weight, linear.weight * scale[:, None], rtol=1e-12, atol=0)
    torch.testing.assert_close(folded[0].bias, expected_bias, rtol=1e-12, atol=1e-15)


def test_fold_is_pure():
    model = Sequential(Linear(4, 3, bias=False), BatchNorm1d(3), Tanh())
    random_stats(model[1], torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    fold_batchnorm(model)
    assert torch.equal(rng, torch.get_rng_state())
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert model[0].bias is None and count_batchnorms(model) == 1


@pytest.mark.slow
@pytest.mark.parametrize("dtype, rtol", [(torch.float32, FLOAT32_RTOL), (torch.float64, FLOAT64_RTOL)])
def test_deep_bn_logits_agree(deep_bn, dtype, rtol):
    loaded = load_run(deep_bn)
    norms = [m for m in loaded.model.modules() if isinstance(m, BatchNorm1d)]
    assert len(norms) == 5
    assert all(float((n.running_var - 1).abs().max()) > 0.1 for n in norms)  # the stats were learned
    model = loaded.model.to(dtype)
    folded = fold_batchnorm(model)
    dev = build_examples(loaded.splits["dev"], loaded.vocab, "window", loaded.model_cfg.block_size)
    with torch.no_grad():
        logits, logits_folded = model(dev.x)[0], folded(dev.x)[0]  # (N, V)
    assert logits_folded.dtype == dtype
    assert relative_diff(logits, logits_folded) < rtol


@pytest.mark.parametrize("layers, where", [
    ((Linear(4, 3), Tanh(), BatchNorm1d(3)), "follows Tanh"),
    ((BatchNorm1d(4), Linear(4, 3)), "follows nothing"),
    ((Embedding(5, 4), FlattenConsecutive(2), BatchNorm1d(8)), "follows FlattenConsecutive"),
    ((Linear(4, 3), BatchNorm1d(3), BatchNorm1d(3)), "follows BatchNorm1d"),
])
def test_refuses_batchnorm_not_after_linear(layers, where):
    with pytest.raises(CharlabError, match=f"{where}.*not a Linear"):
        fold_batchnorm(Sequential(*layers))


def test_refuses_batchnorm_without_running_stats_or_order():
    with pytest.raises(CharlabError, match="no running statistics"):
        fold_batchnorm(Sequential(Linear(4, 3), BatchNorm1d(3, track_running_stats=False)))
    unordered = nn.Module()
    unordered.lin, unordered.bn = Linear(4, 3), BatchNorm1d(3)
    with pytest.raises(CharlabError, match="not inside a Sequential"):
        fold_batchnorm(unordered)


def cli_json(capsys, argv) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_fold_command_makes_an_ordinary_run(deep_bn, tmp_path, capsys):
    out = tmp_path / "folded"
    report = cli_json(capsys, ["fold", str(deep_bn), "--out", str(out), "--json"])
    assert {"max_abs_diff", "loss", "loss_folded", "speedup"} <= set(report)
    assert report["same_samples"] is True and report["batchnorms_folded"] == 5
    assert report["loss_folded"] == pytest.approx(report["loss"], rel=FLOAT32_RTOL)
    folded = load_run(out)
    assert count_batchnorms(folded.model) == 0 and folded.model_cfg.norm == "none"
    assert cli_json(capsys, ["eval", str(out), "--json"]) == pytest.approx(
        cli_json(capsys, ["eval", str(deep_bn), "--json"]), rel=FLOAT32_RTOL)
    flags = ["-n", "30", "--seed", "7", "--json"]
    assert cli_json(capsys, ["sample", str(out), *flags]) == cli_json(capsys, ["sample", str(deep_bn), *flags])
    assert main(["diagnose", str(out), "--steps", "2", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


@pytest.mark.slow
def test_fold_command_refusals(deep_bn, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert main(["fold", str(deep_bn), "--out", str(taken)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    plain = tmp_path / "plain"
    charlab.train(preset="mlp", steps=2, eval_interval=2, n_samples=0, out=plain)
    assert main(["fold", str(plain), "--out", str(tmp_path / "x")]) == 2
    assert "no BatchNorm to fold" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
