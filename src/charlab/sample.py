"""Batched sampling: every sequence advances together, one forward pass per character position."""

from __future__ import annotations

import torch

from charlab.data import BOUNDARY_ID, Vocab
from charlab.devices import model_device
from charlab.errors import CharlabError
from charlab.evaluate import eval_mode
from charlab.sample_table import LogitTable, worth_a_table

MAX_SAMPLE_LEN = 64  # characters; a sample that never emits the boundary is cut here
SAMPLE_CHUNK = 4096  # sequences per batch: bounds memory for a large -n


def sample_ids(model, n: int, generator: torch.Generator, temperature: float = 1.0,
               top_k: int | None = None, prefix: list[int] = (), max_len: int = MAX_SAMPLE_LEN
               ) -> list[list[int]]:
    """``n`` id lists (prefix included, boundary excluded), sampled together. A window model with a
    small context space reads its logits from a table of every window (``sample_table.py``)."""
    table = LogitTable(model) if worth_a_table(model, n) else None
    out: list[list[int]] = []
    for start in range(0, n, SAMPLE_CHUNK):
        out.extend(_sample_chunk(model, min(SAMPLE_CHUNK, n - start), generator, temperature, top_k,
                                 list(prefix), max_len, table))
    return out


def _sample_chunk(model, n, generator, temperature, top_k, prefix, max_len, table=None):
    limit = max_len if model.example_kind == "window" else min(max_len, model.block_size - 1)
    ctx = torch.tensor([prefix] * n, dtype=torch.long).view(n, len(prefix))  # (n, t)
    done = torch.zeros(n, dtype=torch.bool)  # (n,)
    device = model_device(model)  # the model may be on a GPU; drawing stays on the CPU generator
    with eval_mode(model):
        while ctx.shape[1] < limit and not bool(done.all()):
            if table is not None:
                logits = table(ctx) / temperature  # (n, V)
            else:
                logits = model.next_token_logits(ctx.to(device)).float().cpu() / temperature  # (n, V)
            if top_k is not None and top_k < logits.shape[1]:
                kth = torch.topk(logits, top_k, dim=1).values[:, -1:]  # (n, 1)
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=1)  # (n, V)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (n,)
            nxt = torch.where(done, BOUNDARY_ID, nxt)
            done |= nxt == BOUNDARY_ID
            ctx = torch.cat([ctx, nxt.unsqueeze(1)], dim=1)  # (n, t+1)
    return ctx.tolist()


def sample_texts(model, vocab: Vocab, splits: dict[str, list[str]], n: int, seed: int,
                 temperature: float = 1.0, top_k: int | None = None, prefix: str = "") -> list[dict]:
    """``n`` samples as ``{"text", "novelty"}``; one seed gives the same samples every time."""
    if n < 1:
        raise CharlabError(f"-n must be at least 1, got {n}")
    if not temperature > 0:
        raise CharlabError(f"--temperature must be positive, got {temperature}")
    if top_k is not None and top_k < 1:
        raise CharlabError(f"--top-k must be at least 1, got {top_k}")
    generator = torch.Generator().manual_seed(seed)
    ids = sample_ids(model, n, generator, temperature, top_k, vocab.encode(prefix))
    lookup = {name: set(splits.get(name, [])) for name in ("train", "dev", "test")}
    texts = [vocab.decode(row) for row in ids]
    return [{"text": t, "novelty": next((k for k, s in lookup.items() if t in s), "new")} for t in texts]
