"""The Python API: ``charlab.train(...)`` does what ``charlab train`` does, returning values.

    import charlab
    result = charlab.train(preset="mlp-bn", steps=2000, out="runs/demo")
    result.losses["dev"], result.samples[:5]
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from charlab import rundir
from charlab.config import DEFAULT_PRESET, ModelConfig, TrainConfig, load_preset, validate
from charlab.data import SPLITS, Vocab, build_examples, read_items, split_items
from charlab.evaluate import split_loss
from charlab.models import build_model
from charlab.progress import ProgressBar, expected_init_loss
from charlab.sample import sample_texts
from charlab.trainer import Observer, Trainer

DEFAULT_SAMPLES = 20  # samples printed and saved at the end of training


@dataclass
class TrainedRun:
    """What a training run returns: the model, its losses and where it was saved."""

    model: torch.nn.Module
    vocab: Vocab
    splits: dict[str, list[str]]
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    losses: dict[str, float]
    step0_loss: float | None
    expected_init_loss: float
    best_step: int
    wall_time_s: float
    samples: list[dict] = field(default_factory=list)
    out: Path | None = None

    def summary(self) -> dict:
        steps = self.train_cfg.steps
        return {
            "run": str(self.out) if self.out else None,
            "model": self.model_cfg.model,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "vocab_size": self.vocab.size,
            "steps": steps,
            "loss_step0": self.step0_loss,
            "expected_init_loss": self.expected_init_loss,
            "best_step": self.best_step,
            "losses": self.losses,
            "wall_time_s": self.wall_time_s,
            "steps_per_s": steps / self.wall_time_s if self.wall_time_s > 0 else None,
            "samples": self.samples,
        }


def resolve_config(preset: str = DEFAULT_PRESET, **overrides) -> tuple[ModelConfig, TrainConfig]:
    """A preset with overrides (``None`` values ignored) applied to whichever config owns the key."""
    model_cfg, train_cfg = load_preset(preset)
    for key, value in overrides.items():
        if value is None:
            continue
        target = next((c for c in (model_cfg, train_cfg) if key in {f.name for f in dataclasses.fields(c)}), None)
        if target is None:
            raise TypeError(f"unknown setting {key!r}")
        setattr(target, key, value)
    validate(model_cfg, train_cfg)
    return model_cfg, train_cfg


def prepare_data(data, seed: int):
    items = read_items(data)
    splits = split_items(items, seed)
    vocab = Vocab.from_items(items)
    return vocab, splits


def train(data: str | Path | None = None, preset: str = DEFAULT_PRESET, out: str | Path | None = None,
          observers: list[Observer] | tuple = (), progress: bool = False, n_samples: int = DEFAULT_SAMPLES,
          overwrite: bool = False, extra_meta: dict | None = None, **overrides) -> TrainedRun:
    """Train a model on a word list (default: the embedded names) and optionally save a run dir."""
    model_cfg, train_cfg = resolve_config(preset, **overrides)
    vocab, splits = prepare_data(data, train_cfg.seed)
    model_cfg.vocab_size = vocab.size
    out_dir = rundir.create_run_dir(out, overwrite) if out is not None else None
    init_generator = torch.Generator().manual_seed(train_cfg.seed)
    model = build_model(model_cfg, init_generator)
    examples = {k: build_examples(splits[k], vocab, model.example_kind, model_cfg.block_size) for k in SPLITS}
    bar = ProgressBar(vocab.size, enabled=progress)
    trainer = Trainer(model, examples["train"], examples["dev"], train_cfg, [bar, *observers])
    start = time.perf_counter()
    state = trainer.fit()
    wall = time.perf_counter() - start
    losses = {k: split_loss(model, examples[k]) for k in SPLITS}
    samples = sample_texts(model, vocab, splits, n_samples, train_cfg.seed) if n_samples else []
    result = TrainedRun(model, vocab, splits, model_cfg, train_cfg, losses,
                        state.losses[0] if state.losses else None, expected_init_loss(vocab.size),
                        state.best_step, wall, samples, out_dir)
    if out_dir is not None:
        save_result(out_dir, result, state, data, extra_meta)
    return result


def save_result(out_dir: Path, result: TrainedRun, state, data, extra_meta: dict | None) -> None:
    source = str(Path(data).resolve()) if data is not None else "embedded:names.txt"
    meta = {"data": source, "command": sys.argv, **(extra_meta or {})}
    rundir.save_run(out_dir, result.model_cfg, result.train_cfg, result.vocab, result.splits,
                    result.model, meta)
    records = [{"event": "train", "step": i, "loss": loss} for i, loss in enumerate(state.losses)]
    records += [{"event": "eval", **dataclasses.asdict(e)} for e in state.evals]
    records.append({"event": "final", "step": state.step, "best_step": state.best_step, **result.losses,
                    "wall_time_s": result.wall_time_s})
    rundir.append_metrics(out_dir, records)
    rundir.atomic_write_json(out_dir / rundir.SAMPLES, result.samples)
