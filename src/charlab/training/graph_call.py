"""Calling the compiled SGD steps without ``torch.compile``'s per-call machinery.

A call of a ``torch.compile``'d function goes through dynamo's frame handling and guard checks
before it reaches the compiled graph: ~20 us a call here, a fifth of a compiled chunk of 4 mlp-bn
steps (measured on the 2-core machine, one thread: ~11,000 steps/s through ``torch.compile`` against
~13,000 calling the graph straight, in one process). ``Capture`` is the inductor backend that
``compiled.compile_steps`` hands to ``torch.compile``: it compiles exactly as the ``"inductor"``
backend does (``compile_fx`` with the same options, so the same on-disk cache entries) and keeps the
graphs it compiled. ``DirectCall`` then calls such a graph with the caller's tensors in the graph's
order.

Skipping the guards is sound here because every call passes the same kind of arguments: the same
parameter and buffer tensors (updated in place), and batches and learning rates of the first call's
shapes, strides and dtypes (``steps.HandDerivedStep.compiled_steps``). A ``DirectCall`` is built from
the graph compiled during a first call and kept under the call's ``signature`` (the plan, and every
tensor's shape, strides and dtype: what dynamo's guards check), so a later trainer in the same process
whose call reuses that compiled code (no new graph) finds it there. ``build`` returns None, and the
caller keeps calling through ``torch.compile``, whenever it cannot map every graph input to one of the
caller's tensors or the graph returns more than the losses.

One ``Capture`` per options serves the whole process (``shared_capture``): dynamo reuses code compiled
for an equal backend, and the direct calls of the graphs it compiled are kept with it.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Hashable

import torch


class Capture:
    """An inductor backend for ``torch.compile`` that keeps what it compiles (``graphs``) and the
    direct calls built from them (``calls``, by call signature)."""

    def __init__(self, options: dict[str, Any]):
        self.options = options
        self.graphs: list[tuple[Any, list, int]] = []  # (compiled graph, example inputs, outputs)
        self.calls: dict[Hashable, DirectCall] = {}

    def __eq__(self, other: object) -> bool:  # dynamo reuses what an equal backend compiled
        return isinstance(other, Capture) and other.options == self.options

    def __hash__(self) -> int:
        return hash(json.dumps(self.options, sort_keys=True))

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list):
        from torch._inductor.compile_fx import compile_fx  # imports the compiler (~1 s): only when compiling

        compiled = compile_fx(gm, example_inputs, config_patches=self.options)
        output = next(node for node in gm.graph.nodes if node.op == "output")
        self.graphs.append((compiled, list(example_inputs), len(output.args[0])))
        return compiled


@functools.cache
def shared_capture(options_json: str) -> Capture:
    """The process's backend for these options (``json.dumps`` of them, sorted)."""
    return Capture(json.loads(options_json))


def signature(plan: Hashable, args: list[torch.Tensor]) -> tuple:
    """What tells compiled calls apart: the plan and each tensor's shape, strides and dtype."""
    return plan, tuple((tuple(a.shape), a.stride(), a.dtype) for a in args)


class DirectCall:
    """A compiled graph called with ``args`` (the tensors of a call of the compiled function, in a
    fixed order) rearranged into the graph's inputs; returns its one output."""

    def __init__(self, graph, order: list[int]):
        self.graph, self.order = graph, order

    @classmethod
    def build(cls, capture: Capture, key: Hashable, args: list[torch.Tensor], compiled_since: int) -> "DirectCall | None":
        """The direct call for calls like ``args`` (signature ``key``): kept from an earlier build, or
        made from the one graph ``capture`` compiled since it held ``compiled_since`` graphs (during
        the first call with ``args``); None if there is none or it does not map."""
        if key in capture.calls:
            return capture.calls[key]
        new = capture.graphs[compiled_since:]
        if len(new) != 1:
            return None
        graph, inputs, outputs = new[0]
        order = [next((i for i, arg in enumerate(args) if arg is tensor), None) for tensor in inputs]
        new[0][1].clear()  # the example inputs are no longer needed
        if outputs != 1 or None in order:
            return None
        capture.calls[key] = cls(graph, order)
        return capture.calls[key]

    def __call__(self, args: list[torch.Tensor]) -> torch.Tensor:
        return self.graph(*[args[i] for i in self.order])[0]
