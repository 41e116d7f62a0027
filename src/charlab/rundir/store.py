"""Saving and loading a run directory (its layout: ``layout.py``); nothing is ever unpickled."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from charlab.config import ModelConfig, TrainConfig, from_dict, to_dict, validate
from charlab.data import Vocab
from charlab.errors import CharlabError
from charlab.rundir.integrity import DIGEST_KEY, check_digest, read_head, refuse_pickle, tensor_digest
from charlab.models import build_model
from charlab.rundir.atomic import atomic_save_tensors, atomic_write_json
from charlab.rundir.layout import (BEST_CHECKPOINT, CHECKPOINT_BEST_PREFIX, CHECKPOINT_DIR, CHECKPOINT_MODEL_PREFIX,
                                   CHECKPOINT_STATE_KEY, CONFIG, FORMAT_VERSION, LAST_CHECKPOINT, META_FILES, METRICS,
                                   REQUIRED, SPLITS_FILE, VOCAB, WEIGHTS)

def create_run_dir(out: str | Path, overwrite: bool = False) -> Path:
    """Make ``out``; refuse one that already holds files unless ``overwrite`` (nothing is lost)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CharlabError(f"--out {out} is a file; pass a directory path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CharlabError(f"run directory {out} already exists and is not empty; "
                           "choose another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS).unlink(missing_ok=True)  # appended to, not replaced: an old run's lines would mix in
    return out


def default_run_dir(preset: str, root: str | Path = "runs") -> Path:
    """``runs/PRESET``, or ``runs/PRESET-2``, ``-3``... if taken."""
    root = Path(root)
    candidate, n = root / preset, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = root / f"{preset}-{n}"
    return candidate


def _read_json(run: Path, name: str):
    path = run / name
    data = path.read_bytes()
    refuse_pickle(path, data)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CharlabError(f"{path} is not valid JSON (corrupted or not a charlab file); "
                           "re-create the run with `charlab train`") from None


@dataclass
class Run:
    """A loaded run: its directory, configs, vocabulary, splits and model (eval-ready)."""

    path: Path
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    vocab: Vocab
    splits: dict[str, list[str]]
    model: torch.nn.Module
    meta: dict
    weights: dict | None = None  # set when the final weights are missing: {"source": "checkpoints/...", "step": N}


def check_run_dir(run: str | Path, required: tuple[str, ...] = REQUIRED) -> Path:
    run = Path(run)
    if not run.is_dir():
        raise CharlabError(f"run directory {run} does not exist; pass a directory made by `charlab train`")
    missing = [name for name in required if not (run / name).is_file()]
    if missing:
        also = f" (nor a checkpoint in {CHECKPOINT_DIR}/ to use instead)" if WEIGHTS in missing else ""
        raise CharlabError(f"run directory {run} lacks {', '.join(missing)}{also}; "
                           "pass a complete run directory made by `charlab train`")
    return run


def read_safetensors(path: Path, remedy: str = "the weights are corrupted or truncated: re-create the run"
                     ) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a safetensors file, its checksum verified; pickles refused, never unpickled.
    A file that cannot be read is a one-line error ending with ``remedy``."""
    refuse_pickle(path, read_head(path))
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CharlabError(f"{path} is not a readable safetensors file ({str(err).splitlines()[0][:80]}); "
                           f"{remedy}") from None
    check_digest(path, tensors, metadata)
    return tensors, metadata


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, its checksum verified; pickles refused, never unpickled."""
    return read_safetensors(path)[0]


def load_run(run: str | Path, weights: str = WEIGHTS) -> Run:
    """Rebuild the model from a run directory alone; never executes code from its files. A run without
    ``model.safetensors`` (stopped mid-training) loads the best-dev weights of its checkpoints instead
    (``checkpoint_weights``) and says which in ``Run.weights``."""
    run = Path(run)
    source = None
    if weights == WEIGHTS and (run / CONFIG).is_file() and not (run / WEIGHTS).is_file():
        found = checkpoint_weights(run)
        if found is not None:
            state, source = found
    run = check_run_dir(run, META_FILES if source else REQUIRED)
    meta, model_cfg, train_cfg, vocab, splits = read_run_meta(run)
    model = build_model(model_cfg)
    if source is None:
        state = load_weights(run / weights)
    shown = source["source"] if source else weights
    expected = model.state_dict()
    mismatch = sorted(set(expected) ^ set(state)) or [
        k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape)]
    if mismatch:
        raise CharlabError(f"{run / shown} does not match the run's config and vocabulary "
                           f"(e.g. {mismatch[0]}); re-create the run")
    model.load_state_dict(state)
    model.eval()
    return Run(run, model_cfg, train_cfg, vocab, splits, model, meta, source)


def checkpoint_weights(run: str | Path) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The best-dev weights of a run's checkpoints, for a run stopped before its final weights were
    saved: ``checkpoints/best.safetensors``, else ``last.safetensors`` (its best-dev weights once an
    evaluation has happened, else its weights at its step). Returns the weights and
    ``{"source": "checkpoints/NAME", "step": N}``, or None when the run has no checkpoint. The file is
    checked as any weights file (no pickle, checksum verified); a damaged one is a one-line error."""
    folder = Path(run) / CHECKPOINT_DIR
    name = next((n for n in (BEST_CHECKPOINT, LAST_CHECKPOINT) if (folder / n).is_file()), None)
    if name is None:
        return None
    path = folder / name
    tensors, metadata = read_safetensors(path)
    try:
        state = json.loads(metadata[CHECKPOINT_STATE_KEY])["train_state"]
        step, best_step = int(state["step"]), state.get("best_step")
        evaluated = bool(state.get("evals"))
    except (KeyError, TypeError, ValueError):
        raise CharlabError(f"{path} is malformed (its state is not a charlab checkpoint's); "
                           "re-create the run") from None
    best = name == BEST_CHECKPOINT or evaluated
    prefix = CHECKPOINT_BEST_PREFIX if best else CHECKPOINT_MODEL_PREFIX
    weights = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not weights:
        raise CharlabError(f"{path} holds no {prefix}* weights; re-create the run")
    if best and isinstance(best_step, int):
        step = best_step
    return weights, {"source": f"{CHECKPOINT_DIR}/{name}", "step": step}


def read_run_meta(run: str | Path) -> tuple[dict, ModelConfig, TrainConfig, Vocab, dict[str, list[str]]]:
    """config.json, vocab.json and splits.json, checked (what a resume needs besides a checkpoint)."""
    run = check_run_dir(run, META_FILES)
    meta = _read_json(run, CONFIG)
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        found = meta.get("format_version") if isinstance(meta, dict) else None
        raise CharlabError(f"{run / CONFIG} has format version {found!r}, this charlab reads version "
                           f"{FORMAT_VERSION}; re-create the run with this charlab")
    try:
        model_cfg, train_cfg = from_dict(meta)
        validate(model_cfg, train_cfg)
    except (TypeError, AttributeError, ValueError) as err:
        raise CharlabError(f"{run / CONFIG} is malformed ({str(err)[:80]}); re-create the run") from None
    vocab = Vocab.from_json(_read_json(run, VOCAB))
    if vocab.size != model_cfg.vocab_size:
        raise CharlabError(f"{run / VOCAB} has {vocab.size} symbols but the config says "
                           f"{model_cfg.vocab_size}; the run directory is inconsistent: re-create it")
    splits = _read_json(run, SPLITS_FILE)
    if not isinstance(splits, dict) or not all(
            isinstance(splits.get(k), list) and all(isinstance(i, str) for i in splits[k])
            for k in ("train", "dev", "test")):
        raise CharlabError(f"{run / SPLITS_FILE} is malformed: expected train/dev/test lists; re-create the run")
    return meta, model_cfg, train_cfg, vocab, splits


def save_run(out: Path, model_cfg: ModelConfig, train_cfg: TrainConfig, vocab: Vocab,
             splits: dict[str, list[str]], model: torch.nn.Module, extra: dict | None = None,
             weights: str = WEIGHTS) -> None:
    """Write config, vocabulary, splits and weights; ``extra`` adds keys to config.json."""
    save_run_meta(out, model_cfg, train_cfg, vocab, splits, extra)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_save_tensors(out / weights, tensors, {DIGEST_KEY: tensor_digest(tensors)})


def save_run_meta(out: Path, model_cfg: ModelConfig, train_cfg: TrainConfig, vocab: Vocab,
                  splits: dict[str, list[str]], extra: dict | None = None) -> None:
    """config.json, vocab.json and splits.json: written before training, so a killed run resumes."""
    meta = {"format_version": FORMAT_VERSION, **to_dict(model_cfg, train_cfg), **(extra or {})}
    atomic_write_json(out / CONFIG, meta)
    atomic_write_json(out / VOCAB, vocab.to_json())
    atomic_write_json(out / SPLITS_FILE, {k: splits[k] for k in ("train", "dev", "test")})


def append_metrics(out: Path, records: list[dict], train_losses: list[float] = ()) -> None:
    """Append ``records`` to metrics.jsonl, after one ``{"event": "train", "step", "loss"}`` line per
    entry of ``train_losses``."""
    with open(out / METRICS, "a", encoding="utf-8") as fh:
        fh.writelines(train_line(step, loss) for step, loss in enumerate(train_losses))
        fh.writelines(json.dumps(r) + "\n" for r in records)


def train_line(step: int, loss: float) -> str:
    """``json.dumps({"event": "train", "step": step, "loss": loss})`` + newline, by a format string for
    finite losses (the same text: json writes floats with ``repr``): a run writes one per step, and
    200k ``json.dumps`` calls take ~1.2 s."""
    if not math.isfinite(loss):
        return json.dumps({"event": "train", "step": step, "loss": loss}) + "\n"
    return f'{{"event": "train", "step": {step}, "loss": {loss!r}}}\n'


def read_metrics(run: str | Path) -> list[dict]:
    path = Path(run) / METRICS
    if not path.is_file():
        return []
    data = path.read_bytes()
    refuse_pickle(path, data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CharlabError(f"{path} is not UTF-8 text; the metrics file is corrupted") from None
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise CharlabError(f"{path} line {n} is not JSON; the metrics file is corrupted") from None
    return records
