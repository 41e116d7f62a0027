"""Record the lecture's statistics while training, as an ``Observer`` of the trainer.

On a sampled step only (``sampling.py``) the recorder attaches a forward hook to every leaf module
and a tensor hook to each output, reads the weight gradients after ``backward``, clones the
parameters before the optimizer step and compares after it. Every statistic is reduced on the
device; the lot is copied to the CPU in one transfer per sampled step, and every handle is removed
before the step ends. Nothing is stored on the layers and nothing calls ``retain_grad()``.

Records are plain dicts (``rec.records``), also written as JSON lines to ``out/diagnostics.jsonl``:

- ``{"kind": "meta", ...}``: model class, vocab size, batch size, the layers and whether they are
  bounded (class attribute ``bounded = True``, e.g. ``layers.Tanh``), carry a bias, are a BatchNorm;
- ``{"kind": "step", "step", "lr", "loss", "layers": [...], "params": [...]}`` per sampled step, the
  layers in the order they ran;
- ``{"kind": "init", "loss", "expected"}``: the loss at step 0 against -ln(1/V);
- ``{"kind": "probe", ...}``: the full-pass quantities of ``probe.py`` (with ``probe=True``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from charlab.diagnostics import quantities as q
from charlab.diagnostics.probe import full_pass, is_batchnorm
from charlab.diagnostics.sampling import DEFAULT_SCHEDULE, SampleSchedule
from charlab.errors import CharlabError
from charlab.rundir import DIAGNOSTICS as DIAGNOSTICS_FILE, atomic_write_bytes
from charlab.training.events import Observer, TrainView


def read_records(path: str | Path) -> list[dict]:
    """Records from a JSON-lines file written by ``Recorder`` (or ``charlab diagnose``)."""
    path = Path(path)
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise CharlabError(f"{path} line {n} is not JSON; the diagnostics file is corrupted: "
                               "re-create it with `charlab diagnose`") from None
    return records


def write_records(path: str | Path, records: list[dict]) -> None:
    """All records as JSON lines, written atomically."""
    atomic_write_bytes(Path(path), "".join(json.dumps(r) + "\n" for r in records).encode("utf-8"))


def leaf_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules without children, named as in ``model.named_modules()`` (``layers.0``, ...)."""
    return [(name, m) for name, m in model.named_modules() if name and not any(True for _ in m.children())]


def layer_info(name: str, module: nn.Module) -> dict:
    bias = getattr(module, "bias", None)
    return {"name": name, "type": type(module).__name__, "bounded": bool(getattr(module, "bounded", False)),
            "bias": isinstance(bias, torch.Tensor), "batchnorm": is_batchnorm(module),
            "weight_2d": isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() == 2}


def first_tensor(output) -> torch.Tensor | None:
    """A module's output tensor (the first one of a tuple, as RNNs return); None if not floating point."""
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        return output
    return None


def gathered(tensors: list[torch.Tensor]) -> torch.Tensor:
    """All calls of a module in one step (an RNN cell runs once per position), flattened together."""
    return tensors[0] if len(tensors) == 1 else torch.cat([t.reshape(-1) for t in tensors])  # (N,)


def to_host(tree):
    """Copy every tensor in a nested dict/list to the CPU in one transfer; 0-d tensors become floats."""
    leaves: list[torch.Tensor] = []

    def collect(node):
        if isinstance(node, torch.Tensor):
            leaves.append(node.detach().float().reshape(-1))
        elif isinstance(node, dict):
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(tree)
    flat = torch.cat(leaves).cpu().tolist() if leaves else []
    position = 0

    def rebuild(node):
        nonlocal position
        if isinstance(node, torch.Tensor):
            n = node.numel()
            values = flat[position:position + n]
            position += n
            return values[0] if node.dim() == 0 else values
        if isinstance(node, dict):
            return {k: rebuild(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rebuild(v) for v in node]
        return node

    return rebuild(tree)


class Recorder(Observer):
    """Records diagnostics on sampled steps; ``records`` holds them in memory, ``out`` (a run
    directory) also gets them as JSON lines. ``init_loss`` says whether step 0 is the model's
    initialisation (False when probing trained weights). ``probe=True`` also runs the full-pass
    quantities (``probe.py``) over the training set at the end of training: one pass, a fixed cost that
    ``charlab train --diagnose`` leaves to ``charlab diagnose``."""

    def __init__(self, schedule: SampleSchedule = DEFAULT_SCHEDULE, out: str | Path | None = None,
                 probe: bool = False, init_loss: bool = True):
        self.schedule = schedule
        self.path = Path(out) / DIAGNOSTICS_FILE if out is not None else None
        self.probe = probe
        self.init_loss = init_loss
        self.records: list[dict] = []
        self._reset_step()

    def _reset_step(self) -> None:
        self._handles: list = []
        self._outputs: dict[str, list[torch.Tensor]] = {}
        self._grads: dict[str, list[torch.Tensor]] = {}
        self._active = False
        self._pending: dict | None = None
        self._before: list[torch.Tensor] = []

    # records ---------------------------------------------------------------------------------------
    def emit(self, record: dict) -> None:
        self.records.append(record)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def steps(self) -> list[dict]:
        return [r for r in self.records if r["kind"] == "step"]

    # observer events -------------------------------------------------------------------------------
    def on_train_start(self, view: TrainView) -> None:
        model, cfg = view.model, view.cfg
        self.layers = leaf_layers(model)
        self.params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.total = cfg.steps
        if self.path is not None:
            self.path.write_text("", encoding="utf-8")
        self.emit({"kind": "meta", "model": type(model).__name__, "vocab_size": getattr(model, "vocab_size", None),
                   "batch_size": cfg.batch_size,
                   "optimizer": cfg.optimizer, "lr": cfg.lr, "steps": cfg.steps,
                   "schedule": {"every": self.schedule.every, "dense": self.schedule.dense},
                   "layers": [layer_info(n, m) for n, m in self.layers]})

    def on_step_start(self, view: TrainView, step: int) -> None:
        if not self.schedule.sampled(step, self.total):
            return
        self._active = True
        for name, module in self.layers:
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))

    def _forward_hook(self, name: str):
        def hook(module, inputs, output):
            out = first_tensor(output)
            if out is None:
                return
            self._outputs.setdefault(name, []).append(out.detach())
            if out.requires_grad:
                self._handles.append(out.register_hook(self._grad_hook(name)))
        return hook

    def _grad_hook(self, name: str):
        def hook(grad):
            self._grads.setdefault(name, []).append(grad.detach())
        return hook

    def on_after_backward(self, view: TrainView, step: int) -> None:
        if not self._active:
            return
        bounded = {name for name, m in self.layers if getattr(m, "bounded", False)}
        drawn = bounded or {name for name, _ in self.layers}  # histograms only where the figures use them
        layers = []
        for name, outs in self._outputs.items():  # insertion order = the order the layers ran
            out = gathered(outs)
            entry = {"name": name, "out": q.summary(out, hist=name in drawn)}
            if name in bounded:
                entry["out"]["saturation"] = q.saturation_fraction(out)
            if name in self._grads:
                entry["grad"] = q.summary(gathered(self._grads[name]), hist=name in drawn)
            layers.append(entry)
        params = []
        for name, p in self.params:
            entry = {"name": name, "shape": list(p.shape), "data_std": q.std(p)}
            if p.grad is not None:
                entry["grad"] = q.summary(p.grad, hist=p.dim() == 2)
                entry["grad_data"] = q.grad_data_ratio(p.grad, p)
            params.append(entry)
        self._outputs, self._grads = {}, {}
        self._before = [p.detach().clone() for _, p in self.params]
        self._pending = {"layers": layers, "params": params}

    def on_step_end(self, view: TrainView, step: int, loss: torch.Tensor) -> None:
        if not self._active:
            return
        if self._pending is None:
            self._remove_handles()
            return
        for entry, before, (_, p) in zip(self._pending["params"], self._before, self.params):
            entry["update_data"] = q.update_data_ratio(before, p)
        record = to_host({"kind": "step", "step": step, "lr": view.lr(step), "loss": loss,
                          **self._pending})
        self._remove_handles()
        self.emit(record)
        vocab_size = self.records[0]["vocab_size"]
        if step == 0 and self.init_loss and vocab_size:
            self.emit({"kind": "init", "loss": record["loss"], "expected": q.expected_init_loss(vocab_size)})

    def _remove_handles(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._reset_step()

    def on_train_end(self, view: TrainView) -> None:
        self._remove_handles()
        if self.probe:
            self.emit(full_pass(view.model, view.train_examples, view.cfg.batch_size, view.cfg.seed))
