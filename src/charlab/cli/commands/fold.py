"""charlab fold: fold every BatchNorm of a run into the Linear before it, verify, save a new run.

The folded run is an ordinary run directory: an MLP with ``norm = "none"`` whose Linears carry the
folded weights and biases, so ``sample``, ``eval`` and ``diagnose`` work on it unchanged and the
same seed gives the same samples. Nothing is written unless the folded model agrees with the original
on the whole dev set.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

from charlab import rundir
from charlab.api import DEFAULT_SAMPLES
from charlab.cli.args import add_json_flag, load_run_noted, print_json, with_weights
from charlab.data import build_examples
from charlab.errors import CharlabError
from charlab.inference.evaluate import eval_mode, split_loss
from charlab.inference.fold import count_batchnorms, fold_batchnorm
from charlab.models import build_model
from charlab.inference.sample import sample_texts

NAME = "fold"
ORDER = 60
HELP = "fold BatchNorm into the preceding Linear: same outputs, faster inference, a new run directory"
DESCRIPTION = ("Fold every BatchNorm of a trained run into the Linear before it (W' = W*g/sqrt(var+eps), "
               "b' = (b - mean)*g/sqrt(var+eps) + beta), check on the dev set that the logits and loss are "
               "unchanged, measure the inference speedup, and save the folded model as a new run directory.")
VERIFY_RTOL = 1e-4  # max |logits diff| / max |logits| allowed before saving; float32 rounding gives ~1e-7
TIMING_REPEATS = 5  # dev-set forward passes timed per model; the speedup is a ratio of medians


def add_arguments(parser) -> None:
    parser.add_argument("run", metavar="RUN", help="run directory made by `charlab train` with a BatchNorm model")
    parser.add_argument("--out", metavar="DIR", required=True, help="new run directory for the folded model")
    parser.add_argument("--overwrite", action="store_true", help="allow --out to be a non-empty directory")
    add_json_flag(parser)


def folded_config(model_cfg):
    """The config that rebuilds the folded model: the same MLP without normalisation."""
    return dataclasses.replace(model_cfg, norm="none")


def check_rebuildable(folded: torch.nn.Module, cfg) -> None:
    """The folded weights must load into the model ``cfg`` builds, or the new run would not load."""
    expected = {k: tuple(v.shape) for k, v in build_model(cfg).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in folded.state_dict().items()}
    if expected != got:
        raise CharlabError(f"the folded {cfg.model!r} model does not match the same model built with "
                           "norm='none', so it could not be saved as a run; nothing was written")


def inference_seconds(model: torch.nn.Module, x: torch.Tensor, repeats: int = TIMING_REPEATS) -> float:
    """Median wall time of one eval-mode forward pass over ``x``."""
    times = []
    with eval_mode(model):
        model(x)  # warm-up: first-call allocations are not part of the comparison
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def logits_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with eval_mode(model):
        return model(x)[0]  # (N, V)


def verify(loaded, folded: torch.nn.Module) -> dict:
    """Compare the two models on the dev set: logits, losses, samples and speed."""
    if not loaded.splits["dev"]:
        raise CharlabError(f"run {loaded.path} has an empty dev split; folding is verified on it")
    dev = build_examples(loaded.splits["dev"], loaded.vocab, loaded.model.example_kind, loaded.model_cfg.block_size)
    logits, logits_folded = logits_of(loaded.model, dev.x), logits_of(folded, dev.x)  # (N, V) each
    max_abs = float((logits - logits_folded).abs().max())
    seed = loaded.train_cfg.seed
    samples = sample_texts(loaded.model, loaded.vocab, loaded.splits, DEFAULT_SAMPLES, seed)
    samples_folded = sample_texts(folded, loaded.vocab, loaded.splits, DEFAULT_SAMPLES, seed)
    return {"max_abs_diff": max_abs, "max_rel_diff": max_abs / float(logits.abs().max()),
            "loss": split_loss(loaded.model, dev), "loss_folded": split_loss(folded, dev),
            "speedup": inference_seconds(loaded.model, dev.x) / inference_seconds(folded, dev.x),
            "same_samples": samples == samples_folded, "samples": samples_folded}


def save_folded(loaded, folded, cfg, out: Path, report: dict) -> None:
    extra = {"data": loaded.meta.get("data"), "command": sys.argv, "folded_from": str(loaded.path)}
    rundir.save_run(out, cfg, loaded.train_cfg, loaded.vocab, loaded.splits, folded, extra)
    records = rundir.read_metrics(loaded.path)
    records.append({"event": "fold", **{k: v for k, v in report.items() if k != "samples"}})
    rundir.append_metrics(out, records)
    rundir.atomic_write_json(out / rundir.SAMPLES, report["samples"])


def run(args) -> int:
    loaded = load_run_noted(args.run)
    n_norms = count_batchnorms(loaded.model)
    if n_norms == 0:
        raise CharlabError(f"run {args.run} has no BatchNorm to fold; pass a run trained with --norm batchnorm")
    if Path(args.out).resolve() == loaded.path.resolve():
        raise CharlabError("--out is the run being folded; pass a new directory so the original is kept")
    folded = fold_batchnorm(loaded.model)
    cfg = folded_config(loaded.model_cfg)
    check_rebuildable(folded, cfg)
    report = verify(loaded, folded)
    if not report["max_rel_diff"] <= VERIFY_RTOL:
        raise CharlabError(f"folded logits differ from the original by {report['max_rel_diff']:.2e} (relative), "
                           f"more than {VERIFY_RTOL:g}; nothing was written")
    out = rundir.create_run_dir(args.out, args.overwrite)
    report.update(out=str(out), batchnorms_folded=n_norms)
    save_folded(loaded, folded, cfg, out, report)
    summary = {k: report[k] for k in ("max_abs_diff", "loss", "loss_folded", "speedup", "max_rel_diff",
                                      "same_samples", "batchnorms_folded", "out")}
    if args.json:
        print_json(with_weights(summary, loaded))
    else:
        print(f"folded {n_norms} BatchNorm(s) into the Linear before each; saved {out}")
        print(f"dev set: max |logits - logits_folded| = {report['max_abs_diff']:.3e} "
              f"(relative {report['max_rel_diff']:.1e})")
        print(f"dev loss {report['loss']:.6f}, folded {report['loss_folded']:.6f}; "
              f"same samples with seed {loaded.train_cfg.seed}: {'yes' if report['same_samples'] else 'no'}")
        print(f"inference speedup on the dev set: {report['speedup']:.2f}x (median of {TIMING_REPEATS} passes)")
    return 0
