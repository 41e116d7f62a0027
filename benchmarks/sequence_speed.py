"""Sequence models per training step: makemore.py's against charlab's reference and fast paths.

One invocation, one thread each (``--threads``), the same names and the same batches of 32, steps
interleaved (every round runs each contender for ``--steps`` steps, in a rotating order); the figure is
the median step, and ratios are taken between medians of this run. Each side's step is its own code
from a batch in hand to updated weights:

- makemore: the body of its training loop, ``model(X, Y)``, ``model.zero_grad(set_to_none=True)``,
  ``loss.backward()``, ``optimizer.step()`` (its ``torch.optim.AdamW`` as it builds it, no clipping);
- charlab: the trainer's step, ``Trainer.stepper.take_step`` (``training/steps.py``, ``AutogradStep`` for
  the sequence models): the learning rate of the step, every gradient reset, forward and loss,
  ``backward()``, clipping when the configuration has it, ``optimizer.step()`` (``FusedAdamW``).

The batch fetch is left out on both sides: makemore's own "step time" counts its DataLoader's
``next()`` (~0.45 ms a batch of 32 in-process, ``-n 0``; its default 4 workers prefetch in other
processes), charlab's in-process draw (``BatchSampler.draw`` + ``Examples.rows``) costs ~20 us. ``--clock
cpu`` times each step in the CPU time of its thread (with one thread, what it costs; on a shared machine,
without the time other processes take the core).

- **makemore sizes** (its defaults: n_embd 64, n_embd2 64, 4 layers of 4 heads, batch 32): makemore's
  ``RNN('rnn')``, ``RNN('gru')``, ``BoW`` and ``Transformer`` built with its ``ModelConfig``, loaded from
  ``--peer PATH`` by file path (never imported as a package; skipped with a note when absent), against
  charlab's ``rnn``, ``gru``, ``lstm``, ``bow``, ``transformer`` at the same sizes and with makemore's
  training settings (AdamW, lr 5e-4, weight decay 0.01, constant rate, no clipping), on the reference path
  (the hand-written cells and attention) and the fast path (the default, ``charlab/nn/fast.py``). Widths:
  makemore always runs its full-width batches (every row padded to 16 positions, as makemore trains);
  charlab runs the same batches at full width and, the figure that compares the training steps, cut after
  the batch's longest item + 1 (``Examples.rows``, what charlab's trainer feeds; ~10.7 positions on
  average for batches of 32 names). Same names, same draws, same model sizes.
- **presets** (``--presets``): each sequence preset's own step (its sizes, batch, optimizer, schedule,
  gradient clipping and thread count), reference against fast, in steps/s.
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


def makemore_step(model):
    """makemore's training step: the body of its loop from ``model(X, Y)`` to ``optimizer.step()``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)
    model.train()

    def step(x, y):
        _, loss = model(x, y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def charlab_step(model, examples, cfg: TrainConfig, fused: bool = False):
    """charlab's training step: the trainer's own (``Trainer.stepper.take_step``, as ``charlab train``
    calls it every step), on a given batch; ``fused``: with torch's ``AdamW(fused=True)`` instead."""
    from charlab.training.loop import Trainer
    trainer = Trainer(model, examples, examples, cfg)
    if fused:
        trainer.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    model.train()
    count = iter(range(1 << 62))

    def step(x, y):
        trainer.stepper.take_step(trainer, next(count), x, y, trainer.emit)

    return step


def makemore_training(threads: int) -> TrainConfig:
    """makemore's training settings: AdamW at 5e-4 with weight decay 0.01, no schedule, no clipping."""
    return TrainConfig(optimizer="adamw", lr=5e-4, weight_decay=0.01, schedule="constant", grad_clip=0.0,
                       batch_size=32, threads=threads)


def charlab_at_makemore_sizes(kind: str, vocab_size: int, block_size: int, path: str, examples, threads: int,
                              fused: bool = False):
    cfg = ModelConfig(model=kind, block_size=block_size, n_embd=64, n_hidden=64, n_head=4, n_layers=4,
                      init="kaiming", gain=1.0, vocab_size=vocab_size)
    model = set_sequence_path(build_model(cfg, torch.Generator().manual_seed(0)), path)
    return charlab_step(model, examples, makemore_training(threads), fused)


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}  # cpu: this thread's CPU time (one thread a step)


class Contender:
    """One training step and batch layout; ``run(n)`` times n steps, one clock pair each (``CLOCKS``)."""

    def __init__(self, name, step, batches, cut: bool, threads: int = 1, clock: str = "wall"):
        self.name, self.step, self.clock = name, step, CLOCKS[clock]
        self.batches, self.cut, self.threads = batches, cut, threads
        self.times: list[float] = []
        self.next = 0

    def run(self, n: int, record: bool = True) -> None:
        torch.set_num_threads(self.threads)
        for _ in range(n):
            x, y = self.batches(self.next, self.cut)
            self.next += 1
            t0 = self.clock()
            self.step(x, y)
            if record:
                self.times.append(self.clock() - t0)

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
            contenders.append(Contender("makemore", makemore_step(model), batches, cut=False, threads=args.threads,
                                        clock=args.clock))
        for path in ("reference", "fast"):
            for cut in (False, True):
                step = charlab_at_makemore_sizes(kind, vocab.size, block, path, examples, args.threads)
                contenders.append(Contender(f"{path}{' cut' if cut else ''}", step, batches, cut=cut,
                                            threads=args.threads, clock=args.clock))
        if args.fused_adamw:
            step = charlab_at_makemore_sizes(kind, vocab.size, block, "fast", examples, args.threads, fused=True)
            contenders.append(Contender("fast cut fused", step, batches, cut=True, threads=args.threads,
                                        clock=args.clock))
        interleave(contenders, args.rounds, args.steps, args.warmup)
        row = {"model": kind, **{c.name: c.median_ms for c in contenders}}
        rows.append(row)
        print("row " + json.dumps(row), file=sys.stderr, flush=True)
    return rows


def print_makemore_table(rows: list[dict]) -> None:
    print("\nmedian ms per training step (each side's own: forward, loss, backward, AdamW) at makemore's sizes, "
          "batch 32, one thread "
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
            contenders.append(Contender(path, charlab_step(model, examples, train_cfg), batches, cut=True,
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
    medians = {}
    for path in ("reference", "fast"):
        walls = [r["wall_s"] for r in rows if r["path"] == path]
        medians[path] = statistics.median(walls)
        print(f"- {path} path (the hand-written cells): {', '.join(f'{w:.1f}' for w in walls)} s" if path == "reference"
              else f"- fast path (the default): {', '.join(f'{w:.1f}' for w in walls)} s")
    print(f"- the default is {medians['reference'] / medians['fast']:.2f}x faster")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", default=str(DEFAULT_PEER), help="path to makemore.py (skipped when absent)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="wall: elapsed time; cpu: the step's thread CPU time (one thread: the same on a quiet "
                             "machine, and not counting the time other processes hold the core on a shared one)")
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
