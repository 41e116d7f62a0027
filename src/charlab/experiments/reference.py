"""The lecture's code, written the lecture's way: the peer every speed figure is measured against.

makemore part 3's final cell: plain tensors, a Python loop, ``loss.backward()``, a manual SGD update
``p.data += -lr * p.grad``, a per-step ``lossi.append(loss.log10().item())``, and sampling one name
at a time. Examples are built with a Python loop per example (the lecture's ``build_dataset``).

It shares with charlab only what makes a seed mean the same run (so the loss trajectories match):

- the split: ``random.Random(seed).shuffle`` then 80/10/10 (``charlab.data.split_items``);
- the init draws, in charlab's order (``nn/init.py``'s ``apply_init``): C, W1 (no b1: BatchNorm follows),
  W2, b2 from ``torch.Generator().manual_seed(seed)``; W1 and W2 are drawn in charlab's (out, in)
  layout and transposed, so the same numbers land in the same places;
- the batches: ``torch.randint`` from a second generator seeded ``seed + 1`` (``batch_generator`` in
  ``training/state.py``);
- BatchNorm with torch's semantics (biased batch variance + eps; running variance unbiased), which
  charlab's ``batchnorm.py`` documents as its one departure from the notebook's ``std(0)``.

It ships inside the package so that ``charlab bench`` works from an installed charlab. Run it alone:
``python -m charlab.experiments.reference --steps 2000`` (or ``python benchmarks/reference.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

from charlab.data import read_items
from charlab.data.splits import split_items
from charlab.nn.init import OUTPUT_BIAS_SCALE, OUTPUT_WEIGHT_SCALE, TANH_GAIN

BLOCK_SIZE = 3  # the lecture's context length
N_EMBD = 10  # the lecture's embedding size
N_HIDDEN = 200  # the lecture's hidden units
BATCH_SIZE = 32  # the lecture's minibatch
BN_MOMENTUM = 0.001  # the notebook's 0.999 * running + 0.001 * batch
BN_EPS = 1e-5  # torch's BatchNorm1d epsilon (charlab's semantics)
LR_HIGH, LR_LOW = 0.1, 0.01  # the lecture's step decay: 0.1 for the first half, then 0.01
LECTURE_STEPS = 200_000  # the lecture's max_steps: the run its losses and speed figures are quoted for
LOG_EVERY = 10_000  # the lecture prints the loss every 10k steps
MAX_NAME_LEN = 64  # matches charlab.inference.sample.MAX_SAMPLE_LEN


def build_dataset(words: list[str], stoi: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The lecture's loop: one context window per character, '.' (id 0) padding and ending."""
    X, Y = [], []
    for w in words:
        context = [0] * BLOCK_SIZE
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(X), torch.tensor(Y)


def load_data(seed: int):
    """Words, the lecture's stoi/itos, and (X, Y) per split."""
    words = read_items(None)
    chars = sorted(set("".join(words)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0
    itos = {i: s for s, i in stoi.items()}
    splits = split_items(words, seed)
    data = {k: build_dataset(v, stoi) for k, v in splits.items()}
    return stoi, itos, data


def init_params(vocab_size: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    fan_in = N_EMBD * BLOCK_SIZE
    C = torch.randn((vocab_size, N_EMBD), generator=g)  # the lecture draws b1 after W1; BatchNorm makes it useless
    W1 = torch.randn((N_HIDDEN, fan_in), generator=g).T.contiguous() * (TANH_GAIN / fan_in ** 0.5)
    W2 = torch.randn((vocab_size, N_HIDDEN), generator=g).T.contiguous() * OUTPUT_WEIGHT_SCALE
    b2 = torch.randn(vocab_size, generator=g) * OUTPUT_BIAS_SCALE
    params = {"C": C, "W1": W1, "W2": W2, "b2": b2,
              "bngain": torch.ones((1, N_HIDDEN)), "bnbias": torch.zeros((1, N_HIDDEN))}
    for p in params.values():
        p.requires_grad = True
    return params


def forward(params, running, X, training: bool):
    """Logits for contexts X; in training mode also updates the running statistics."""
    emb = params["C"][X]  # (B, block, n_embd)
    embcat = emb.view(emb.shape[0], -1)  # (B, block*n_embd)
    hpreact = embcat @ params["W1"]  # (B, n_hidden)
    if training:
        bnmeani = hpreact.mean(0, keepdim=True)  # (1, n_hidden)
        bnvari = hpreact.var(0, keepdim=True, unbiased=False)  # (1, n_hidden)
        with torch.no_grad():
            n = hpreact.shape[0]
            running["mean"] = (1 - BN_MOMENTUM) * running["mean"] + BN_MOMENTUM * bnmeani
            running["var"] = (1 - BN_MOMENTUM) * running["var"] + BN_MOMENTUM * bnvari * n / (n - 1)
    else:
        bnmeani, bnvari = running["mean"], running["var"]
    hpreact = params["bngain"] * (hpreact - bnmeani) / torch.sqrt(bnvari + BN_EPS) + params["bnbias"]
    h = torch.tanh(hpreact)  # (B, n_hidden)
    return h @ params["W2"] + params["b2"]  # (B, vocab)


def train(steps: int, seed: int, data, vocab_size: int, verbose: bool = False):
    """The lecture's loop; returns (params, running stats, per-step losses, seconds)."""
    params = init_params(vocab_size, seed)
    running = {"mean": torch.zeros((1, N_HIDDEN)), "var": torch.ones((1, N_HIDDEN))}
    Xtr, Ytr = data["train"]
    g = torch.Generator().manual_seed(seed + 1)
    lossi = []
    start = time.perf_counter()
    for i in range(steps):
        ix = torch.randint(0, Xtr.shape[0], (BATCH_SIZE,), generator=g)
        Xb, Yb = Xtr[ix], Ytr[ix]
        logits = forward(params, running, Xb, training=True)
        loss = F.cross_entropy(logits, Yb)
        for p in params.values():
            p.grad = None
        loss.backward()
        lr = LR_HIGH if i < steps // 2 else LR_LOW
        for p in params.values():
            p.data += -lr * p.grad
        if verbose and i % LOG_EVERY == 0:
            print(f"{i:7d}/{steps:7d}: {loss.item():.4f}")
        lossi.append(loss.item())
    return params, running, lossi, time.perf_counter() - start


@torch.no_grad()
def split_loss(params, running, X, Y) -> float:
    return F.cross_entropy(forward(params, running, X, training=False), Y).item()


@torch.no_grad()
def sample_names(params, running, itos, n: int, seed: int) -> list[str]:
    """The lecture's sampler: one name at a time, one character at a time."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        name, context = [], [0] * BLOCK_SIZE
        while len(name) < MAX_NAME_LEN:
            logits = forward(params, running, torch.tensor([context]), training=False)
            probs = F.softmax(logits, dim=1)
            ix = torch.multinomial(probs, num_samples=1, generator=g).item()
            context = context[1:] + [ix]
            if ix == 0:
                break
            name.append(itos[ix])
        out.append("".join(name))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    stoi, itos, data = load_data(args.seed)
    params, running, lossi, seconds = train(args.steps, args.seed, data, len(stoi), verbose=True)
    dev = split_loss(params, running, *data["dev"])
    names = sample_names(params, running, itos, args.samples, args.seed)
    print(json.dumps({"steps": args.steps, "seconds": seconds, "steps_per_s": args.steps / seconds,
                      "final_loss": lossi[-1], "dev": dev, "finite": all(map(math.isfinite, lossi)),
                      "samples": names}, indent=1))


if __name__ == "__main__":
    main()
