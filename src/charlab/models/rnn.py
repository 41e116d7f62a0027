"""Recurrent language models over whole items (makemore's RNN and GRU, plus an LSTM).

Embedding -> one cell stepped over the positions, carrying its state from step to step -> a Linear
from the hidden vector to logits at every position. The state starts from the cell's learned start
state, so position 0 (the start boundary) already predicts the first character. The tests check
that the state really carries: changing the first character changes the logits at the last position.
``--dropout`` drops embedding inputs and hidden outputs (Zaremba et al. 2014); ``--recurrent-dropout``
drops channels of ``h_{t-1}`` where it feeds the gates, with one mask per sequence for all its steps
(Gal & Ghahramani 2016) so that memory is thinned, not erased anew at every step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from charlab.nn.init import apply_init
from charlab.nn.layers import Embedding, Linear
from charlab.models.base import SequenceModel
from charlab.models.registry import register
from charlab.nn.recurrent import CELLS
from charlab.nn.dropout import Dropout, dropout_generator, dropout_mask
from charlab.nn.fast import default_path, use_fast
from charlab.nn.recurrent_fast import run_sequence


class RecurrentLM(SequenceModel):
    def __init__(self, vocab_size: int, block_size: int, n_embd: int, n_hidden: int, cell: str,
                 dropout: float = 0.0, generator: torch.Generator | None = None,
                 recurrent_dropout: float = 0.0):
        super().__init__(vocab_size, block_size)
        self.wte = Embedding(vocab_size, n_embd)
        self.drop_in = Dropout(dropout, generator)
        self.cell = CELLS[cell](n_embd, n_hidden)
        self.recurrent_dropout = recurrent_dropout  # a mask, not a layer: drawn once per sequence
        self.generator = generator
        self.drop_out = Dropout(dropout, generator)
        self.sequence_path = default_path()  # "fast": the whole sequence at once (nn/fast.py)
        self.lm_head = Linear(n_hidden, vocab_size)

    def time_major_logits(self, idx: torch.Tensor) -> torch.Tensor | None:
        """The fast path (``nn/recurrent_fast.py``): the cell over all positions at once, time-major, and the
        output Linear over the (T*B, H) rows as they come out of it. (T, B, V); None on the reference path."""
        if not use_fast(self):
            return None
        batch = idx.shape[0]
        emb = None
        if self.drop_in.training and self.drop_in.p > 0:  # dropped inputs: embed, then the same draws
            emb = self.drop_in(self.wte(idx))  # (B, T, E)
        mask = self.recurrent_mask(batch, idx.device)
        hidden = run_sequence(self.cell, emb, mask, idx=idx, table=self.wte.weight)  # (T, B, H)
        if self.drop_out.training and self.drop_out.p > 0:  # the mask drawn (B, T, H), as the reference draws it
            keep = dropout_mask(self.drop_out.p, (batch, *hidden.shape[::2]), self.generator, idx.device)
            hidden = hidden * keep.transpose(0, 1)  # (T, B, H)
        return F.linear(hidden, self.lm_head.weight, self.lm_head.bias)  # (T, B, V)

    def recurrent_mask(self, batch: int, device) -> torch.Tensor | None:
        """The recurrent-dropout mask on h_{t-1}, one per sequence for all its steps: (B, H), or None."""
        if self.training and self.recurrent_dropout > 0:
            hidden = self.lm_head.in_features  # the cell's state width
            return dropout_mask(self.recurrent_dropout, (batch, hidden), self.generator, device)
        return None

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        fast = self.time_major_logits(idx)  # (T, B, V) or None
        if fast is not None:
            return fast.transpose(0, 1)  # (B, T, V)
        batch, t = idx.shape
        emb = self.drop_in(self.wte(idx))  # (B, T, E)
        state = self.cell.initial_state(batch)
        mask = self.recurrent_mask(batch, idx.device)
        hiddens = []
        for i in range(t):
            state = self.cell(emb[:, i, :], state, mask)  # h: (B, H)
            hiddens.append(state[0])
        hidden = torch.stack(hiddens, dim=1)  # (B, T, H)
        return self.lm_head(self.drop_out(hidden))  # (B, T, V)

    @property
    def output_layer(self) -> Linear:
        return self.lm_head


def _builder(cell: str):
    def build(cfg, generator=None) -> RecurrentLM:
        model = RecurrentLM(cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_hidden, cell, cfg.dropout,
                            dropout_generator(generator), cfg.recurrent_dropout)
        return apply_init(model, cfg.init, cfg.gain, generator, output=model.output_layer)

    build.__name__ = f"build_{cell}"
    return build


build_rnn = register("rnn")(_builder("rnn"))
build_gru = register("gru")(_builder("gru"))
build_lstm = register("lstm")(_builder("lstm"))
