"""Batched sampling: every sequence advances together, one forward pass per character position."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from charlab.data import BOUNDARY_ID, Vocab
from charlab.models.base import model_device
from charlab.errors import CharlabError
from charlab.inference.evaluate import eval_mode
from charlab.inference.window_cache import NextCharCache, worth_caching

MAX_SAMPLE_LEN = 64  # characters; a sample that never emits the boundary is cut here
SAMPLE_CHUNK = 16_384  # sequences per batch: bounds memory (16k x 64 ids = 8 MB) for a large -n


def sample_ids(model, n: int, generator: torch.Generator, temperature: float = 1.0,
               top_k: int | None = None, prefix: list[int] = (), max_len: int = MAX_SAMPLE_LEN
               ) -> list[list[int]]:
    """``n`` id lists (prefix included, boundary-padded after the end), sampled together."""
    return sample_tensor(model, n, generator, temperature, top_k, prefix, max_len).tolist()


def sample_tensor(model, n: int, generator: torch.Generator, temperature: float = 1.0,
                  top_k: int | None = None, prefix: list[int] = (), max_len: int = MAX_SAMPLE_LEN
                  ) -> torch.Tensor:
    """``n`` samples as one (n, L) id tensor, boundary after each end. A window model with a small
    context space reads its distributions from a cache of every window's (``window_cache.py``)."""
    cache = None
    if worth_caching(model, n):  # cumulative distributions per window, shared by all chunks
        cache = NextCharCache(model, lambda logits: cumulative_probs(logits, temperature, top_k))
    chunks = [_sample_chunk(model, min(SAMPLE_CHUNK, n - start), generator, temperature, top_k,
                            list(prefix), max_len, cache) for start in range(0, n, SAMPLE_CHUNK)]
    width = max(c.shape[1] for c in chunks)
    return torch.cat([F.pad(c, (0, width - c.shape[1]), value=BOUNDARY_ID) for c in chunks])  # (n, L)


def cumulative_probs(logits: torch.Tensor, temperature: float, top_k: int | None) -> torch.Tensor:
    """Temperature, top-k, softmax, cumulative sum: (n, V) logits -> (n, V) for ``draw``."""
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[1]:
        kth = torch.topk(logits, top_k, dim=1).values[:, -1:]  # (n, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits, dim=1).cumsum(1)  # (n, V)


def draw(cdf: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One id per row of the cumulative distribution ``cdf`` (n, V) by inverting it at one uniform
    per row: the first id whose cumulative probability exceeds it (never a zero-probability id).
    ``torch.multinomial`` does the same job far slower on the CPU for many short rows (sampling speed:
    the sampling row of ``charlab bench``)."""
    u = torch.rand(cdf.shape[0], 1, generator=generator) * cdf[:, -1:]  # (n, 1)
    return (cdf <= u).sum(1).clamp_(max=cdf.shape[1] - 1)  # (n,) = searchsorted(cdf, u, right=True)


def _sample_chunk(model, n, generator, temperature, top_k, prefix, max_len, cache=None):
    """Rows that emitted the boundary leave the batch, so each step costs only the live rows."""
    limit = max_len if model.example_kind == "window" else min(max_len, model.block_size - 1)
    t = len(prefix)
    ctx = torch.full((n, max(limit, t)), BOUNDARY_ID, dtype=torch.long)  # (n, L), filled left to right
    ctx[:, :t] = torch.tensor(prefix, dtype=torch.long)
    live = torch.arange(n)  # (a,) rows still sampling
    window = cache.index(ctx[:, :t]) if cache is not None else None  # (a,) number of each live window
    device = model_device(model)  # the model may be on a GPU; drawing stays on the CPU generator
    with eval_mode(model):
        while t < limit and live.numel():
            if cache is not None:
                cdf = cache.lookup(window)  # (a, V)
            else:
                logits = model.next_token_logits(ctx[live, :t].to(device)).float().cpu()  # (a, V)
                cdf = cumulative_probs(logits, temperature, top_k)  # (a, V)
            nxt = draw(cdf, generator)  # (a,)
            ctx[live, t] = nxt
            going = torch.nonzero(nxt != BOUNDARY_ID).squeeze(1)  # (a',) positions still sampling
            live, nxt = live[going], nxt[going]
            if cache is not None:
                window = cache.advance(window[going], nxt)
            t += 1
    return ctx[:, :t]  # (n, t)


def decode_rows(vocab: Vocab, ids: torch.Tensor) -> list[str]:
    """``vocab.decode`` of every row of ``ids`` (n, L) at once: the characters up to each row's first
    boundary, a newline after them (items never contain one), one UTF-32 decode and one split."""
    codepoints = torch.tensor([ord("\n")] + [ord(ch) for ch in vocab.chars], dtype=torch.int32)  # (V,)
    ids = torch.cat([ids, torch.full((ids.shape[0], 1), BOUNDARY_ID, dtype=ids.dtype)], 1)  # (n, L+1)
    stops = ids == BOUNDARY_ID  # (n, L+1), every row has one
    first = stops.int().argmax(1, keepdim=True)  # (n, 1) each row's end
    keep = torch.arange(ids.shape[1]) <= first  # (n, L+1) the characters and the first boundary
    text = codepoints[ids[keep]].numpy().tobytes().decode("utf-32-le")
    return text.split("\n")[:-1]


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
    ids = sample_tensor(model, n, generator, temperature, top_k, vocab.encode(prefix))  # (n, L)
    texts = decode_rows(vocab, ids)
    labels = novelty_labels(set(texts), splits)
    return [{"text": t, "novelty": labels.get(t, "new")} for t in texts]


def novelty_labels(texts: set[str], splits: dict[str, list[str]]) -> dict[str, str]:
    """The split each of ``texts`` is an item of (train before dev before test); absent: new."""
    labels: dict[str, str] = {}
    for name in ("test", "dev", "train"):  # later names win, so train is the label that stays
        labels.update(dict.fromkeys(texts.intersection(splits.get(name, ())), name))
    return labels
