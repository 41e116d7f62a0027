"""Sequence models per training step: makemore.py's against charlab's reference and fast paths.

One invocation, one thread each (``--threads``), the same names and the same batches of 32, steps
interleaved (every round runs each contender for ``--steps`` steps, in a rotating order); the figure is
the median step (forward + backward + AdamW step), and ratios are taken between medians of this run.

- **makemore sizes** (its defaults: n_embd 64, n_embd2 64, 4 layers of 4 heads, batch 32): makemore's
  ``RNN('rnn')``, ``RNN('gru')``, ``BoW`` and ``Transformer`` built with its ``ModelConfig``, loaded from
  ``--peer PATH`` by file path (never imported as a package; skipped with a note when absent), against
  charlab's ``rnn``, ``gru``, ``lstm``, ``bow``, ``transformer`` at the same sizes, on the reference path
  (the hand-written cells and attention) and the fast path (the default, ``charlab/nn/fast.py``). Widths:
  makemore always runs its full-width batches (every row padded to 16 positions, as makemore trains);
  charlab runs the same batches at full width and, the figure that compares the training steps, cut after
  the batch's longest item + 1 (``Examples.rows``, what charlab's trainer feeds; ~10.7 positions on
  average for batches of 32 names). Same names, same draws, same model sizes, AdamW on both sides
  (makemore's ``torch.optim.AdamW`` as it builds it; charlab's ``training.optim.make_optimizer``, i.e.
  ``FusedAdamW``), no gradient clipping on either side (makemore has none).
- **presets** (``--presets``): each sequence preset's own step (its sizes, batch, optimizer, gradient
  clipping and thread count), reference against fast, in steps/s.
- **best** (``--best-steps N``): ``charlab train --preset best --steps N`` as a whole process on each path
  (``CHARLAB_SEQUENCE_PATH``), wall time and the per-step estimate.

    python benchmarks/sequence_speed.py --peer ../shared/peers/makemore.py
    python benchmarks/sequence_speed.py --peer ../shared/peers/makemore.py --presets --best-steps 200
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from charlab.config import ModelConfig, TrainConfig, load_preset
from charlab.data import Vocab, build_sequences, read_items
from charlab.models import build_model
from charlab.nn.fast import ENV, set_sequence_path

DEFAULT_PEER = Path(__file__).resolve().parents[1] / ".." / "shared" / "peers" / "makemore.py"
MODELS = ("rnn", "gru", "lstm", "bow", "transformer")
MAKEMORE_TYPES = {"rnn": "rnn", "gru": "gru", "bow": "bow", "transformer": "transformer"}  # no LSTM there
SEQUENCE_PRESETS = ("rnn", "gru", "lstm", "bow", "transformer", "best")


def load_peer(path: Path):
    """makemore.py as a module object, loaded from its file (its ``__main__`` block does not run)."""
    spec = importlib.util.spec_from_file_location("makemore_peer", path)
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
    return module


def makemore_model(mm, kind: str, vocab_size: int, block_size: int):
    config = mm.ModelConfig(vocab_size=vocab_size, block_size=block_size, n_layer=4, n_head=4, n_embd=64,
                            n_embd2=64)
    with contextlib.redirect_stdout(io.StringIO()):  # its Transformer prints its parameter count
        if kind == "transformer":
            return mm.Transformer(config)
        if kind == "bow":
            return mm.BoW(config)
        return mm.RNN(config, cell_type=kind)


def makemore_optimizer(model):
    return torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)


def charlab_optimizer(model, lr: float, weight_decay: float, fused: bool = False):
    """AdamW as charlab's trainer builds it (``training.loop.make_optimizer``), or the fused CPU kernel."""
    if fused:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    try:
        from charlab.training.loop import make_optimizer
        return make_optimizer(model, TrainConfig(optimizer="adamw", lr=lr, weight_decay=weight_decay))
    except ImportError:  # the trainer's module moved: the settings it used when this was written
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)


def charlab_at_makemore_sizes(kind: str, vocab_size: int, block_size: int, path: str, fused: bool = False):
    cfg = ModelConfig(model=kind, block_size=block_size, n_embd=64, n_hidden=64, n_head=4, n_layers=4,
                      init="kaiming", gain=1.0, vocab_size=vocab_size)
    model = build_model(cfg, torch.Generator().manual_seed(0))
    return set_sequence_path(model, path), charlab_optimizer(model, 5e-4, 0.01, fused)


class Contender:
    """One model + optimizer + batch layout; ``run(n)`` times n steps, one perf_counter pair each."""

    def __init__(self, name, model, optimizer, batches, cut: bool, clip: float = 0.0, threads: int = 1):
        self.name, self.model, self.optimizer = name, model, optimizer
        self.batches, self.cut, self.clip, self.threads = batches, cut, clip, threads
        self.times: list[float] = []
        self.next = 0
        model.train()

    def step(self, x, y):
        _, loss = self.model(x, y)
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip, foreach=True)
        self.optimizer.step()

    def run(self, n: int, record: bool = True) -> None:
        torch.set_num_threads(self.threads)
        for _ in range(n):
            x, y = self.batches(self.next, self.cut)
            self.next += 1
            t0 = time.perf_counter()
            self.step(x, y)
            if record:
                self.times.append(time.perf_counter() - t0)

    @property
    def median_ms(self) -> float:
        return 1000 * statistics.median(self.times)


def interleave(contenders: list[Contender], rounds: int, steps: int, warmup: int) -> None:
    for c in contenders:
        c.run(warmup, record=False)
    for r in range(rounds):
        shift = r % len(contenders)
        for c in contenders[shift:] + contenders[:shift]:
            c.run(steps)


def make_batches(examples, batch_size: int, seed: int = 0, n: int = 4096):
    """The same sequence of batches for every contender: ``batches(i, cut)`` is batch i, full width
    (makemore's 16 positions) or cut after its longest item (charlab's trainer)."""
    gen = torch.Generator().manual_seed(seed)
    draws = [torch.randint(0, len(examples), (batch_size,), generator=gen) for _ in range(n)]

    def batches(i: int, cut: bool):
        ix = draws[i % n]
        return examples.rows(ix) if cut else (examples.x[ix], examples.y[ix])

    return batches


def makemore_table(args, examples, vocab) -> list[dict]:
    block = examples.x.shape[1]
    batches = make_batches(examples, 32)
    mm = None
    if args.peer and Path(args.peer).is_file():
        try:
            mm = load_peer(Path(args.peer))
        except Exception as exc:  # e.g. tensorboard missing: makemore imports SummaryWriter
            print(f"note: makemore.py at {args.peer} did not load ({exc}); its column is skipped", file=sys.stderr)
    else:
        print(f"note: no makemore.py at {args.peer}; its column is skipped (pass --peer PATH)", file=sys.stderr)
    rows = []
    for kind in args.models:
        contenders = []
        if mm is not None and kind in MAKEMORE_TYPES:
            torch.manual_seed(0)
            model = makemore_model(mm, MAKEMORE_TYPES[kind], vocab.size, block)
            contenders.append(Contender("makemore", model, makemore_optimizer(model), batches, cut=False,
                                        threads=args.threads))
        for path in ("reference", "fast"):
            for cut in (False, True):
                model, opt = charlab_at_makemore_sizes(kind, vocab.size, block, path)
                contenders.append(Contender(f"{path}{' cut' if cut else ''}", model, opt, batches, cut=cut,
                                            threads=args.threads))
        if args.fused_adamw:
            model, opt = charlab_at_makemore_sizes(kind, vocab.size, block, "fast", fused=True)
            contenders.append(Contender("fast cut fused", model, opt, batches, cut=True, threads=args.threads))
        interleave(contenders, args.rounds, args.steps, args.warmup)
        row = {"model": kind, **{c.name: c.median_ms for c in contenders}}
        rows.append(row)
        print("row " + json.dumps(row), file=sys.stderr, flush=True)
    return rows


def print_makemore_table(rows: list[dict]) -> None:
    print("\nmedian ms per step (forward + backward + AdamW) at makemore's sizes, batch 32, one thread "
          "(ratio = makemore / charlab). makemore: full width, 16 positions. charlab: full width (16) and cut "
          "(the longest item + 1, as charlab trains):")
    fused = any("fast cut fused" in r for r in rows)
    print("| model | makemore | charlab reference | charlab fast | fast vs makemore | fast vs reference "
          "| reference, cut batches | fast, cut batches | fast cut vs makemore |"
          + (" fast cut, fused AdamW | vs makemore |" if fused else ""))
    print("|---" * (11 if fused else 9) + "|")
    for r in rows:
        mm = r.get("makemore")
        ratio = (lambda a: f"{mm / a:.2f}x" if mm else "n/a")
        extra = f" {r['fast cut fused']:.2f} | {ratio(r['fast cut fused'])} |" if fused else ""
        print(f"| {r['model']} | {f'{mm:.2f}' if mm else 'n/a'} | {r['reference']:.2f} | {r['fast']:.2f} "
              f"| {ratio(r['fast'])} | {r['reference'] / r['fast']:.2f}x | {r['reference cut']:.2f} "
              f"| {r['fast cut']:.2f} | {ratio(r['fast cut'])} |" + extra)


def presets_table(args, items) -> list[dict]:
    rows = []
    for preset in args.preset_names:
        model_cfg, train_cfg = load_preset(preset)
        vocab = Vocab.from_items(items)
        model_cfg = dataclasses.replace(model_cfg, vocab_size=vocab.size)
        examples = build_sequences(items, vocab, model_cfg.block_size)
        if train_cfg.length_buckets:  # as the trainer draws them: one length group per batch
            from charlab.data.batches import BatchSampler
            sampler = BatchSampler(examples, train_cfg.batch_size, torch.Generator().manual_seed(0),
                                   train_cfg.length_buckets)
            draws = [sampler.draw() for _ in range(4096)]
            batches = lambda i, cut: examples.rows(draws[i % len(draws)])  # noqa: E731
        else:
            batches = make_batches(examples, train_cfg.batch_size)
        contenders = []
        for path in ("reference", "fast"):
            model = set_sequence_path(build_model(model_cfg, torch.Generator().manual_seed(0)), path)
            opt = charlab_optimizer(model, train_cfg.lr, train_cfg.weight_decay)
            contenders.append(Contender(path, model, opt, batches, cut=True, clip=train_cfg.grad_clip,
                                        threads=train_cfg.threads))
        rounds = max(args.rounds // (4 if preset == "best" else 1), 3)
        interleave(contenders, rounds, args.steps, args.warmup)
        row = {"preset": preset, "threads": train_cfg.threads, **{c.name: c.median_ms for c in contenders}}
        rows.append(row)
        print("row " + json.dumps(row), file=sys.stderr, flush=True)
    print("\npresets, median ms per step (their own batch, optimizer, clipping, threads; cut batches):")
    print("| preset | threads | reference ms | fast ms | reference steps/s | fast steps/s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['threads']} | {r['reference']:.2f} | {r['fast']:.2f} "
              f"| {1000 / r['reference']:.1f} | {1000 / r['fast']:.1f} | {r['reference'] / r['fast']:.2f}x |")
    return rows


def best_runs(args) -> list[dict]:
    """``charlab train --preset best --steps N`` once per path per repeat, interleaved, whole process."""
    rows = []
    for rep in range(args.best_repeats):
        for path in (("reference", "fast") if rep % 2 == 0 else ("fast", "reference")):
            with tempfile.TemporaryDirectory() as out:
                cmd = [sys.executable, "-m", "charlab", "train", "--preset", "best", "--steps", str(args.best_steps),
                       "--eval-interval", "1000000", "--out", str(Path(out) / "run")]
                t0 = time.perf_counter()
                done = subprocess.run(cmd, env={**os.environ, ENV: path}, capture_output=True, text=True)
                wall = time.perf_counter() - t0
            if done.returncode:
                print(done.stderr[-2000:], file=sys.stderr)
            rows.append({"path": path, "wall_s": wall, "rc": done.returncode})
            print("best " + json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"\n`charlab train --preset best --steps {args.best_steps} --eval-interval 1000000`, whole process:")
    for path in ("reference", "fast"):
        walls = [r["wall_s"] for r in rows if r["path"] == path]
        print(f"- {path}: {', '.join(f'{w:.1f}' for w in walls)} s")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", default=str(DEFAULT_PEER), help="path to makemore.py (skipped when absent)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="steps per contender per round")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--no-makemore-table", action="store_true")
    parser.add_argument("--fused-adamw", action="store_true",
                        help="also time charlab's fast path with torch's own AdamW(fused=True) (the trainer's "
                             "FusedAdamW runs the same kernel with less Python around it)")
    parser.add_argument("--presets", action="store_true", help="also time the sequence presets' own steps")
    parser.add_argument("--preset-names", nargs="+", default=list(SEQUENCE_PRESETS))
    parser.add_argument("--best-steps", type=int, default=0, help="also run `charlab train --preset best` this long")
    parser.add_argument("--best-repeats", type=int, default=1)
    parser.add_argument("--json", help="write every row to this file")
    args = parser.parse_args(argv)

    items = read_items(None)
    vocab = Vocab.from_items(items)
    examples = build_sequences(items, vocab, max(len(w) for w in items) + 1)  # makemore's block_size
    out = {"threads": args.threads, "torch": torch.__version__}
    if not args.no_makemore_table:
        out["makemore_sizes"] = makemore_table(args, examples, vocab)
        print_makemore_table(out["makemore_sizes"])
    if args.presets:
        out["presets"] = presets_table(args, items)
    if args.best_steps:
        out["best"] = best_runs(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
