"""``linear``: ``x @ W^T + b`` for the transformer trunk's matmuls, with oneDNN's float32 kernel on the CPU.

torch's CPU matmul is MKL's sgemm, which runs its AVX2 code on AMD processors (this project's development
machine is an AMD EPYC with AVX-512). oneDNN, also in every CPU build of torch, behind
``torch.ops.mkldnn._linear_pointwise`` (the op torch.compile's CPU backend emits for a Linear), uses AVX-512
there: for the transformer's Linears at ~350 rows it takes ~0.55x MKL's time (c_attn 51 against 92 us,
the MLP's two 66-68 against 122-126 us, one thread). The same product of the same float32 inputs, summed
in another order (differences ~1e-7 relative, as between any two BLAS).

It applies to float32 on the CPU with oneDNN enabled (``torch.backends.mkldnn``); everywhere else (float64,
as the exactness tests run, other devices, a torch without the op) ``linear`` is ``F.linear``. oneDNN
builds a kernel per shape on first use (~0.8 ms) and keeps 1,024 of them: a run must bring few shapes,
as the transformer's forward does (B*T rows) and its backward (the rows with a target, their count
rounded up: ``transformer_fast.ROW_QUANTUM``). For the bag of words' 64-wide Linears oneDNN is no faster
within a step (it was ~15% slower there), so the BoW keeps torch's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ONEDNN_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None


def onednn_applies(x: torch.Tensor) -> bool:
    """Whether ``linear`` computes with oneDNN for ``x``: float32 on the CPU, oneDNN built and enabled."""
    return (ONEDNN_LINEAR is not None and x.dtype == torch.float32 and x.device.type == "cpu"
            and torch._C._get_mkldnn_enabled())


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight.T + bias``: (N, in) -> (N, out), with oneDNN where ``onednn_applies``."""
    if onednn_applies(x):
        return ONEDNN_LINEAR(x, weight, bias, "none", [], "")  # (N, out)
    return F.linear(x, weight, bias)  # (N, out)
