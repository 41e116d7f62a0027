"""Checkpoints: ``RUN/checkpoints/last.safetensors`` and ``best.safetensors``, written atomically.

A checkpoint is ONE safetensors file, so it is replaced in one rename (temporary file, fsync, rename:
``rundir.atomic_write_bytes``) and a kill at any moment leaves the previous one whole. It holds
a snapshot of ``state.capture`` (``TrainView.capture``), stored without pickle:

- tensors: ``model.*`` (weights and buffers), ``best.*`` (the best-dev weights so far),
  ``optim.<param>.<name>`` (optimizer state tensors), the generator states ``batch_rng``,
  ``torch_rng``, ``cuda_rng`` (with CUDA) and ``model_rng.<i>`` (the model's dropout generators),
  ``losses`` (float64, one per step so far: float32 values kept exactly);
- metadata ``state``: JSON with the step, schedule state, evaluations, best dev loss and step,
  optimizer param groups and scalar state; ``format_version``; ``sha256`` of the tensors.

``last`` is written at every evaluation (including the final one), every ``checkpoint_interval``
steps when that is set, and when a signal stops training; ``best`` when an evaluation sets a new best
dev loss. Weights that are not finite are never written: the last good checkpoint stays.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save as serialize

from charlab.errors import CharlabError
from charlab.rundir import METRICS, atomic_write_bytes, read_metrics
from charlab.rundir.store import read_safetensors
from charlab.rundir.integrity import DIGEST_KEY, tensor_digest
from charlab.rundir.layout import (BEST_CHECKPOINT as BEST, CHECKPOINT_BEST_PREFIX, CHECKPOINT_DIR,
                                   CHECKPOINT_FORMAT_VERSION, CHECKPOINT_MODEL_PREFIX, CHECKPOINT_STATE_KEY as STATE_KEY,
                                   CHECKPOINT_VERSION_KEY as VERSION_KEY, LAST_CHECKPOINT as LAST)
from charlab.training.events import Observer, TrainView
from charlab.training.nonfinite import all_finite
from charlab.training.state import restore



def checkpoint_path(run: str | Path, which: str = LAST) -> Path:
    return Path(run) / CHECKPOINT_DIR / which


def encode(sd: dict) -> bytes:
    """A ``state.capture`` snapshot -> safetensors bytes (tensors + JSON metadata)."""
    tensors = {f"{CHECKPOINT_MODEL_PREFIX}{k}": v for k, v in sd["model"].items()}
    tensors.update({f"{CHECKPOINT_BEST_PREFIX}{k}": v for k, v in sd["best_weights"].items()})
    tensors["batch_rng"], tensors["torch_rng"] = sd["batch_rng"], sd["torch_rng"]
    if sd.get("cuda_rng") is not None:
        tensors["cuda_rng"] = sd["cuda_rng"]
    tensors.update({f"model_rng.{i}": rng for i, rng in enumerate(sd.get("model_rng", []))})
    train_state = dict(sd["train_state"])
    tensors["losses"] = torch.tensor(train_state.pop("losses"), dtype=torch.float64)  # (step,)
    optimizer = None
    if sd["optimizer"] is not None:
        scalars = {}
        for idx, entries in sd["optimizer"]["state"].items():
            for name, value in entries.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim.{idx}.{name}"] = value
                else:
                    scalars.setdefault(str(idx), {})[name] = value
        optimizer = {"param_groups": sd["optimizer"]["param_groups"], "scalars": scalars}
    doc = {"train_state": train_state, "schedule": sd["schedule"], "optimizer": optimizer}
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {VERSION_KEY: str(CHECKPOINT_FORMAT_VERSION), STATE_KEY: json.dumps(doc), DIGEST_KEY: tensor_digest(tensors)}
    return serialize(tensors, metadata=meta)


def decode(tensors: dict[str, torch.Tensor], doc: dict) -> dict:
    """The inverse of ``encode``: a snapshot for ``state.restore``."""
    def prefixed(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    optimizer = None
    if doc["optimizer"] is not None:
        state: dict[int, dict] = {}
        for key, value in prefixed("optim.").items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = value
        for idx, entries in doc["optimizer"]["scalars"].items():
            state.setdefault(int(idx), {}).update(entries)
        groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
                  for g in doc["optimizer"]["param_groups"]]
        optimizer = {"state": state, "param_groups": groups}
    train_state = {**doc["train_state"], "losses": tensors["losses"].tolist()}
    return {"model": prefixed(CHECKPOINT_MODEL_PREFIX), "best_weights": prefixed(CHECKPOINT_BEST_PREFIX), "optimizer": optimizer,
            "schedule": doc["schedule"], "batch_rng": tensors["batch_rng"], "torch_rng": tensors["torch_rng"],
            "cuda_rng": tensors.get("cuda_rng"), "train_state": train_state,
            "model_rng": [v for _, v in sorted(prefixed("model_rng.").items(), key=lambda kv: int(kv[0]))]}


def load_checkpoint(path: str | Path) -> dict:
    """Read and check a checkpoint file; any problem is a one-line ``CharlabError``."""
    path = Path(path)
    if not path.is_file():
        raise CharlabError(f"no checkpoint at {path}; only runs trained by this charlab can be resumed, "
                           "and only once their first evaluation has been saved")
    tensors, meta = read_safetensors(path, "it is truncated or corrupted: resume from best.safetensors or "
                                           "re-create the run")
    if meta.get(VERSION_KEY) != str(CHECKPOINT_FORMAT_VERSION):
        raise CharlabError(f"{path} has checkpoint format version {meta.get(VERSION_KEY)!r}, this charlab "
                           f"reads version {CHECKPOINT_FORMAT_VERSION}; resume it with the charlab that wrote it")
    try:
        return decode(tensors, json.loads(meta[STATE_KEY]))
    except (KeyError, TypeError, ValueError, AttributeError, json.JSONDecodeError):
        raise CharlabError(f"{path} is malformed (its state does not match its tensors); "
                           "resume from best.safetensors or re-create the run") from None


def check_fits(model: torch.nn.Module, sd: dict, path: Path) -> None:
    """Refuse a checkpoint whose tensors do not have the model's names and shapes."""
    expected = model.state_dict()
    for name, weights in (("weights", sd["model"]), ("best weights", sd["best_weights"])):
        mismatch = sorted(set(expected) ^ set(weights)) or [
            k for k in expected if tuple(expected[k].shape) != tuple(weights[k].shape)]
        if mismatch:
            raise CharlabError(f"{path}: the {name} do not match the run's config and vocabulary "
                               f"(e.g. {mismatch[0]}); the run directory is inconsistent")


def load_into(trainer, sd: dict, path: Path) -> None:
    """Load a decoded checkpoint into ``trainer`` to resume it, refusing one that does not fit its model."""
    check_fits(trainer.model, sd, path)
    try:
        restore(trainer, sd)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CharlabError(f"{path} does not fit this run ({str(err).splitlines()[0][:80]}); "
                           "the run directory is inconsistent") from None


def clean_stale_temps(run: str | Path) -> None:
    """Remove temporary files a killed writer left behind (``.NAME.XXXX.tmp``, never a real file)."""
    for folder in (Path(run), Path(run) / CHECKPOINT_DIR):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


class Checkpointer(Observer):
    """Writes ``last`` (and ``best`` on a new best dev loss) during training; see the module doc."""

    def __init__(self, run: str | Path):
        self.folder = Path(run) / CHECKPOINT_DIR
        self.saved_step: int | None = None  # step of the last checkpoint written

    def on_train_start(self, view: TrainView) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if view.step == 0:  # a fresh run: checkpoints of an overwritten run must not be resumed
            for stale in (LAST, BEST):
                (self.folder / stale).unlink(missing_ok=True)
        else:
            self.saved_step = view.step  # resumed from the checkpoint at this step

    def on_step_end(self, view: TrainView, step: int, loss: torch.Tensor) -> None:
        cfg = view.cfg
        evaluates_now = view.step % cfg.eval_interval == 0 or view.step >= cfg.steps  # on_eval saves then
        if cfg.checkpoint_interval and view.crossed(cfg.checkpoint_interval) and not evaluates_now:
            self.save(view, best=False)

    def on_eval(self, view: TrainView, step: int, losses: dict) -> None:
        self.save(view, best=view.best_step == step)

    def on_train_end(self, view: TrainView) -> None:
        reason = view.stop_reason
        if view.stop_requested and reason is not None and reason.keep_state:
            self.save(view, best=False)

    def save(self, view: TrainView, best: bool) -> bool:
        """Write the checkpoint(s); False (nothing written) when the weights are not finite."""
        if view.stop_reason is not None and not view.stop_reason.keep_state:
            return False
        sd = view.capture()
        if not all_finite(sd["model"].values()):
            return False
        data = encode(sd)
        atomic_write_bytes(self.folder / LAST, data)
        if best:
            atomic_write_bytes(self.folder / BEST, data)
        self.saved_step = view.step
        return True


def trim_metrics(run: Path, step: int) -> None:
    """Before a resume from ``step``: drop the records the resumed run writes again (train, eval,
    final) and any record of a step at or after ``step``; keep the rest."""
    rewritten = {"train", "eval", "final"}
    kept = [r for r in read_metrics(run) if isinstance(r, dict) and r.get("event") not in rewritten
            and not (isinstance(r.get("step"), int) and r["step"] >= step)]
    if (Path(run) / METRICS).exists():
        atomic_write_bytes(Path(run) / METRICS, "".join(json.dumps(r) + "\n" for r in kept).encode("utf-8"))
