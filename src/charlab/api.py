"""The Python API: ``charlab.train(...)`` does what ``charlab train`` does, returning values.

    import charlab
    result = charlab.train(preset="mlp-bn", steps=2000, out="runs/demo")
    result.losses["dev"], result.samples[:5]
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
import time
from typing import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from charlab.data import batches
from charlab.training import checkpoint, devices, distributed
from charlab.training.events import Observer
from charlab import rundir
from charlab.config import ModelConfig, TrainConfig, split_seed_of, starting_config, validate
from charlab.data import SPLITS, Vocab, build_examples, read_items
from charlab.errors import CharlabError
from charlab.inference.evaluate import split_loss
from charlab.models import build_model
from charlab.training.progress import ProgressBar
from charlab.models.base import expected_init_loss
from charlab.inference.sample import sample_texts
from charlab.data.splits import make_splits
from charlab.diagnostics.recorder import Recorder
from charlab.diagnostics.sinks import Sink
from charlab.training.loop import Trainer
from charlab.training.safe_fit import fit_safely

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
            "members": self.model_cfg.members,
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


def resolve_config(preset: str | None = None, **overrides) -> tuple[ModelConfig, TrainConfig]:
    """A preset with overrides (``None`` values ignored) applied to whichever config owns the key.
    ``preset`` None: the preset named after ``overrides["model"]``, else the default (``starting_config``)."""
    model_cfg, train_cfg, _ = resolve_with_sources(preset, **overrides)
    return model_cfg, train_cfg


def resolve_with_sources(preset: str | None = None, **overrides
                         ) -> tuple[ModelConfig, TrainConfig, dict[str, str]]:
    """``resolve_config`` plus, for every setting not in ``overrides``, where its value came from."""
    model_cfg, train_cfg, sources = starting_config(preset, overrides.get("model"))
    for key, value in overrides.items():
        if value is None:
            continue
        target = next((c for c in (model_cfg, train_cfg) if key in {f.name for f in dataclasses.fields(c)}), None)
        if target is None:
            raise TypeError(f"unknown setting {key!r}")
        setattr(target, key, value)
        sources.pop(key, None)
    with explained(model_cfg, train_cfg, sources):
        validate(model_cfg, train_cfg)
    return model_cfg, train_cfg, sources


class SettingsError(CharlabError):
    """A ``CharlabError`` that says where the settings it names came from."""


@contextlib.contextmanager
def explained(model_cfg: ModelConfig, train_cfg: TrainConfig, sources: dict[str, str]):
    """An error naming a setting the user did not give (``--n-head`` when only ``--n-embd`` was typed)
    gets a note with that setting's value and origin: "--n-head 4 comes from preset transformer"."""
    try:
        yield
    except CharlabError as err:
        if type(err) is not CharlabError:  # a stop of training, or already explained
            raise
        text = str(err)
        notes = []
        for name, source in sources.items():
            flag = "--" + name.replace("_", "-")
            named = re.search(rf"{re.escape(flag)}(?![\w-])", text) or (
                "_" in name and re.search(rf"(?<![\w-]){name}(?!\w)", text))  # block_size, not "model"
            if named:
                cfg = model_cfg if hasattr(model_cfg, name) else train_cfg
                notes.append(f"{flag} {getattr(cfg, name)} comes from {source}")
        if not notes:
            raise
        raise SettingsError(f"{text} ({'; '.join(notes)})") from None


def example_kind(model_cfg: ModelConfig) -> str:
    """The examples the model learns from ("window" or "sequence"), from a throwaway copy of one member."""
    return build_model(dataclasses.replace(model_cfg, vocab_size=max(model_cfg.vocab_size, 2), members=1)).example_kind


def data_block_size(splits: dict[str, list[str]]) -> int:
    """What a sequence model needs to read every item: the longest item + 1 (the start boundary)."""
    return max((len(item) for k in SPLITS for item in splits[k]), default=0) + 1


def prepare_data(data, seed: int, split: str = "charlab"):
    items = read_items(data)
    splits = make_splits(items, split, seed)
    vocab = Vocab.from_items(items)
    return vocab, splits


def split_examples(splits: dict[str, list[str]], vocab: Vocab, model, device) -> dict:
    """Each split's examples of the kind the model learns from, on ``device``."""
    return {k: devices.to_device(build_examples(splits[k], vocab, model.example_kind, model.block_size), device)
            for k in SPLITS}


def train(data: str | Path | None = None, preset: str | None = None, out: str | Path | None = None,
          observers: list[Observer] | tuple = (), progress: bool = False, n_samples: int = DEFAULT_SAMPLES,
          overwrite: bool = False, extra_meta: dict | None = None, diagnose: bool = False,
          sinks: Sequence[Sink] = (), **overrides) -> TrainedRun:
    """Train a model on a word list (default: the embedded names) and optionally save a run dir.
    ``preset`` None: the preset of ``model`` (``model="lstm"``), else the default; a sequence model's
    ``block_size`` is the data's longest item + 1 unless given. ``diagnose`` adds a
    ``diagnostics.Recorder`` (default schedule) writing to the run dir; ``sinks`` (e.g. a
    ``diagnostics.tensorboard.TensorBoardSink``) get that recorder's records (it is added for them
    alone when ``diagnose`` is False)."""
    model_cfg, train_cfg, sources = resolve_with_sources(preset, **overrides)
    with explained(model_cfg, train_cfg, sources):
        return train_configured(model_cfg, train_cfg, sources, data, out, observers, progress, n_samples,
                                overwrite, extra_meta, diagnose, sinks)


def train_configured(model_cfg: ModelConfig, train_cfg: TrainConfig, sources: dict[str, str], data, out,
                     observers, progress: bool, n_samples: int, overwrite: bool, extra_meta: dict | None,
                     diagnose: bool, sinks: Sequence[Sink] = ()) -> TrainedRun:
    """``train`` once the settings are resolved (``sources``: the settings the caller did not give)."""
    vocab, splits = prepare_data(data, split_seed_of(train_cfg), train_cfg.split)
    model_cfg.vocab_size = vocab.size
    if "block_size" in sources and example_kind(model_cfg) == "sequence":
        model_cfg.block_size = data_block_size(splits)  # a window model keeps its preset's context
        sources["block_size"] = "the data (its longest item + 1)"
    train_cfg.device = devices.resolve(train_cfg.device)
    device = distributed.local_device(train_cfg.device)
    main = distributed.is_main()  # under torchrun only rank 0 writes and shows progress
    init_generator = torch.Generator().manual_seed(train_cfg.seed)
    model = build_model(model_cfg, init_generator).to(device)  # initialised on the CPU, then moved
    batches.check_length_buckets(model.example_kind, train_cfg.length_buckets)
    out_dir = rundir.create_run_dir(out, overwrite) if out is not None and main else None
    examples = split_examples(splits, vocab, model, device)
    bar = ProgressBar(vocab.size, enabled=progress and main)
    if diagnose or sinks:  # one recorder, whatever consumes its records
        observers = [*observers, Recorder(out=out_dir if diagnose else None, sinks=sinks)]
    trainer = Trainer(distributed.wrap(model, train_cfg.batch_size), examples["train"], examples["dev"],
                      train_cfg, [bar, *observers])
    if out_dir is not None:  # config, vocabulary and splits first: a run killed later still resumes
        rundir.save_run_meta(out_dir, model_cfg, train_cfg, vocab, splits, run_meta(data, extra_meta))
    return fit_and_finish(trainer, examples, vocab, splits, model_cfg, n_samples, out_dir, data, extra_meta)


def fit_and_finish(trainer: Trainer, examples: dict, vocab: Vocab, splits: dict[str, list[str]],
                   model_cfg: ModelConfig, n_samples: int, out_dir: Path | None, data, extra_meta: dict | None
                   ) -> TrainedRun:
    """Fit (guarded, checkpointed into ``out_dir``), then final losses, samples and the run files."""
    train_cfg = trainer.cfg
    start = time.perf_counter()
    state = fit_safely(trainer, out_dir)
    wall = time.perf_counter() - start
    trainer.model = distributed.unwrap(trainer.model)  # the plain model again, DDP wrapper released
    model = trainer.model
    losses = {k: split_loss(model, examples[k]) for k in SPLITS}
    samples = sample_texts(model, vocab, splits, n_samples, train_cfg.seed) if n_samples else []
    result = TrainedRun(model, vocab, splits, model_cfg, train_cfg, losses,
                        state.losses[0] if state.losses else None, expected_init_loss(vocab.size),
                        state.best_step, wall, samples, out_dir)
    if out_dir is not None:
        save_result(out_dir, result, state, data, extra_meta)
    return result


def resume(run: str | Path, steps: int | None = None, observers: list[Observer] | tuple = (),
           progress: bool = False, n_samples: int = DEFAULT_SAMPLES) -> TrainedRun:
    """Continue a saved run from ``RUN/checkpoints/last.safetensors`` to ``steps`` total (default: the
    run's own) with its saved config; the losses equal those of an uninterrupted run."""
    run = Path(run)
    meta, model_cfg, train_cfg, vocab, splits = rundir.read_run_meta(run)
    path = checkpoint.checkpoint_path(run)
    sd = checkpoint.load_checkpoint(path)
    done = int(sd["train_state"]["step"])
    if steps is not None:
        train_cfg.steps = steps
        validate(model_cfg, train_cfg)
    if train_cfg.steps < done:
        raise CharlabError(f"--steps {train_cfg.steps} is below the {done} steps {path} already has; "
                           f"pass --steps {done} or more")
    device = devices.resolve(train_cfg.device)
    model = build_model(model_cfg).to(device)  # the weights come from the checkpoint
    checkpoint.check_fits(model, sd, path)
    examples = split_examples(splits, vocab, model, device)
    bar = ProgressBar(vocab.size, enabled=progress)
    trainer = Trainer(model, examples["train"], examples["dev"], train_cfg, [bar, *observers])
    checkpoint.load_into(trainer, sd, path)
    if trainer.state.evals and trainer.state.evals[-1].step == done == train_cfg.steps:
        trainer.state.evals.pop()  # killed after its final evaluation: fit repeats it, identically
    checkpoint.clean_stale_temps(run)
    checkpoint.trim_metrics(run, done)
    extra = {**{k: meta[k] for k in ("data", "command") if k in meta}, "resumed_by": sys.argv}
    rundir.save_run_meta(run, model_cfg, train_cfg, vocab, splits, extra)  # the new --steps, saved first
    return fit_and_finish(trainer, examples, vocab, splits, model_cfg, n_samples, run, None, extra)


def run_meta(data, extra_meta: dict | None) -> dict:
    """What config.json records besides the configs: the data source and the command line."""
    source = str(Path(data).resolve()) if data is not None else "embedded:names.txt"
    return {"data": source, "command": sys.argv, **(extra_meta or {})}


def save_result(out_dir: Path, result: TrainedRun, state, data, extra_meta: dict | None) -> None:
    meta = run_meta(data, extra_meta)
    rundir.save_run(out_dir, result.model_cfg, result.train_cfg, result.vocab, result.splits,
                    result.model, meta)
    records = [{"event": "eval", **dataclasses.asdict(e)} for e in state.evals]
    records.append({"event": "final", "step": state.step, "best_step": state.best_step, **result.losses,
                    "wall_time_s": result.wall_time_s})
    rundir.append_metrics(out_dir, records, train_losses=state.losses)
    rundir.atomic_write_json(out_dir / rundir.SAMPLES, result.samples)
