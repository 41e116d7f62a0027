"""Record the lecture's statistics while training, as an ``Observer`` of the trainer: the one collector.

On a sampled step only (``sampling.py``) the recorder attaches a forward hook to every leaf module
and a tensor hook to each output, reads the weight gradients after ``backward``, clones the
parameters before the optimizer step and compares after it. Every statistic is reduced on the
device; the lot is copied to the CPU in one transfer per sampled step, and every handle is removed
before the step ends. Nothing is stored on the layers and nothing calls ``retain_grad()``.

Each record goes to ``rec.records`` (in memory) and to every sink (``sinks.py``): the JSON lines of
``out/diagnostics.jsonl`` (``out=``), TensorBoard (``tensorboard.py``); the figures (``plots.py``)
and the verdicts (``health.py``) are drawn from the records afterwards. Records are plain dicts:

- ``{"kind": "meta", ...}``: model class, vocab size, block size, batch size, whether step 0 is the
  initialisation (``from_init``), the layers and whether they are bounded (class attribute
  ``bounded = True``, e.g. ``layers.Tanh``), carry a bias, are a BatchNorm; the taps and their kinds;
- ``{"kind": "step", "step", "lr", "loss", "layers": [...], "params": [...]}`` per sampled step, the
  layers in the order they ran: each layer's output ``out`` and its gradient ``grad``, each
  parameter's ``data_std``, ``grad``, ``grad_data`` and ``update_data`` (and, for a sink that wants
  every histogram, ``data_after``: its value after the step). Summaries as ``quantities.summary``.
  A model with taps (``nn/tap.py``: gates, recurrent states, attention, residual stream) adds
  ``"taps": [...]``, one entry per tap as ``taps.reduce_tap`` makes it;
- ``{"kind": "init", "loss", "expected"}``: the loss at step 0 against -ln(1/V);
- ``{"kind": "probe", ...}``: the full-pass quantities of ``probe.py`` (with ``probe=True``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from charlab.diagnostics import quantities as q
from charlab.diagnostics.probe import full_pass, is_batchnorm
from charlab.diagnostics.sampling import DEFAULT_SCHEDULE, SampleSchedule
from charlab.diagnostics.sinks import JsonLinesSink, Sink
from charlab.diagnostics.sinks import read_records, write_records  # noqa: F401  (re-exported)
from charlab.diagnostics.taps import NEEDS, model_taps, reduce_tap
from charlab.nn.tap import Tap
from charlab.rundir.layout import DIAGNOSTICS
from charlab.training.events import Observer, TrainView


def leaf_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules without children, named as in ``model.named_modules()`` (``layers.0``, ...); taps are not
    layers (``taps.model_taps``)."""
    return [(name, m) for name, m in model.named_modules()
            if name and not any(True for _ in m.children()) and not isinstance(m, Tap)]


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
    directory) also gets them as JSON lines, and every one of ``sinks`` is handed them too.
    ``init_loss`` says whether step 0 is the model's initialisation (False when probing trained
    weights). ``probe=True`` also runs the full-pass quantities (``probe.py``) over the training set at
    the end of training: one pass, a fixed cost that ``charlab train --diagnose`` leaves to
    ``charlab diagnose``."""

    def __init__(self, schedule: SampleSchedule = DEFAULT_SCHEDULE, out: str | Path | None = None,
                 probe: bool = False, init_loss: bool = True, sinks: Sequence[Sink] = ()):
        self.schedule = schedule
        self.sinks: list[Sink] = [*([JsonLinesSink(Path(out) / DIAGNOSTICS)] if out is not None else []), *sinks]
        self.every_histogram = any(sink.every_histogram for sink in self.sinks)
        self.probe = probe
        self.init_loss = init_loss
        self.records: list[dict] = []
        self._reset_step()

    def _reset_step(self) -> None:
        self._handles: list = []
        self._outputs: dict[str, list[torch.Tensor]] = {}
        self._grads: dict[str, list[torch.Tensor]] = {}
        self._tap_outs: dict[str, list[torch.Tensor | None]] = {}  # per call, in call order
        self._tap_grads: dict[str, dict[int, torch.Tensor]] = {}  # call index -> gradient
        self._active = False
        self._pending: dict | None = None
        self._before: list[torch.Tensor] = []

    # records ---------------------------------------------------------------------------------------
    def emit(self, record: dict) -> None:
        self.records.append(record)
        for sink in self.sinks:
            sink.write(record)

    def steps(self) -> list[dict]:
        return [r for r in self.records if r["kind"] == "step"]

    # observer events -------------------------------------------------------------------------------
    def on_train_start(self, view: TrainView) -> None:
        model, cfg = view.model, view.cfg
        self.layers = leaf_layers(model)
        self.taps = model_taps(model)
        self.params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.total = cfg.steps
        for sink in self.sinks:
            sink.on_train_start(view)
        self.emit({"kind": "meta", "model": type(model).__name__, "vocab_size": getattr(model, "vocab_size", None),
                   "block_size": getattr(model, "block_size", None), "batch_size": cfg.batch_size,
                   "from_init": self.init_loss,
                   "optimizer": cfg.optimizer, "lr": cfg.lr, "steps": cfg.steps,
                   "schedule": {"every": self.schedule.every, "dense": self.schedule.dense},
                   "layers": [layer_info(n, m) for n, m in self.layers],
                   "taps": [{"name": n, "kind": m.kind} for n, m in self.taps]})

    def needs_autograd(self, step: int) -> bool:
        """Whether ``step`` is sampled: its hooks need autograd; the training strategy keeps the other
        steps on its fast path (``training/steps.py``). Asked after ``on_train_start``."""
        return self.schedule.sampled(step, self.total)

    def on_step_start(self, view: TrainView, step: int) -> None:
        if not self.schedule.sampled(step, self.total):
            return
        self._active = True
        for name, module in self.layers:
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))
        for name, module in self.taps:
            self._handles.append(module.register_forward_hook(self._tap_hook(name, module.kind)))

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

    def _tap_hook(self, name: str, kind: str):
        keep_value, keep_grad = NEEDS[kind]

        def hook(module, inputs, output):
            calls = self._tap_outs.setdefault(name, [])
            index = len(calls)
            calls.append(output.detach() if keep_value else None)
            if keep_grad and output.requires_grad:
                self._handles.append(output.register_hook(self._tap_grad_hook(name, index)))
        return hook

    def _tap_grad_hook(self, name: str, index: int):
        def hook(grad):
            self._tap_grads.setdefault(name, {})[index] = grad.detach()
        return hook

    def on_after_backward(self, view: TrainView, step: int) -> None:
        if not self._active:
            return
        bounded = {name for name, m in self.layers if getattr(m, "bounded", False)}
        every = {name for name, _ in self.layers}
        drawn = every if self.every_histogram else bounded or every  # bounded: the ones the figures draw
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
                entry["grad"] = q.summary(p.grad, hist=p.dim() == 2 or self.every_histogram)
                entry["grad_data"] = q.grad_data_ratio(p.grad, p)
            params.append(entry)
        self._outputs, self._grads = {}, {}
        self._before = [p.detach().clone() for _, p in self.params]
        self._pending = {"layers": layers, "params": params}
        if self.taps:
            self._pending["taps"] = [reduce_tap(name, tap.kind, self._tap_outs[name], self._tap_grads.get(name, {}))
                                     for name, tap in self.taps if name in self._tap_outs]
            self._tap_outs, self._tap_grads = {}, {}

    def on_step_end(self, view: TrainView, step: int, loss: torch.Tensor) -> None:
        if self._active:
            self._record(view, step, loss)
        for sink in self.sinks:
            sink.on_step_end(view, step, loss)

    def _record(self, view: TrainView, step: int, loss: torch.Tensor) -> None:
        if self._pending is None:
            self._remove_handles()
            return
        for entry, before, (_, p) in zip(self._pending["params"], self._before, self.params):
            entry["update_data"] = q.update_data_ratio(before, p)
            if self.every_histogram:
                entry["data_after"] = q.summary(p)
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

    def on_eval(self, view: TrainView, step: int, losses: dict[str, float]) -> None:
        for sink in self.sinks:
            sink.on_eval(view, step, losses)

    def on_train_end(self, view: TrainView) -> None:
        self._remove_handles()
        if self.probe:
            self.emit(full_pass(view.model, view.train_examples, view.cfg.batch_size, view.cfg.seed))
        for sink in self.sinks:
            sink.on_train_end(view)
