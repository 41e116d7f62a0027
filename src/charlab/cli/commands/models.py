"""charlab models: every registered model, what it learns from, its preset, its size on names."""

from __future__ import annotations

import dataclasses
import importlib

from charlab.api import example_kind
from charlab.cli.args import add_json_flag, print_json
from charlab.config import ModelConfig, load_preset, preset_names
from charlab.data import read_items
from charlab.models import build_model
from charlab.models.registry import load_all
from charlab.report.table import text_table

NAME = "models"
ORDER = 15
HELP = "list the registered models: kind, preset, parameters on names, what each is"
DESCRIPTION = ("List every registered model: the examples it learns from (window: a fixed context of the last "
               "block_size characters; sequence: the whole item, block_size taken from the data; counts: fit by "
               "counting), the preset of the same name (`charlab train --model NAME` starts from it), its "
               "parameter count as that preset builds it for the names list (27 symbols), and one line on what "
               "it is.")
NAMES_VOCAB = 27  # the embedded names list: 26 letters and the boundary
DESCRIPTIONS = {  # one line each, simplest first; a model registered without one shows its module's first line
    "bigram-counts": "the count table of makemore part 1, add-k smoothed (--smoothing), fit by counting",
    "bigram": "one (V, V) matrix of logits, row = the previous character, trained by gradient",
    "mlp": "the lecture's MLP (Bengio et al. 2003): embeddings of the last block_size characters, "
           "hidden layers with optional BatchNorm",
    "wavenet": "makemore part 5's hierarchy: neighbouring positions fused in pairs over log2(block_size) levels",
    "rnn": "a plain recurrent cell stepped over the item, its state carried from step to step",
    "gru": "a GRU cell stepped over the item (makemore's RNN with gates)",
    "lstm": "an LSTM cell stepped over the item (the recurrent model makemore lacks)",
    "bow": "makemore's causal bag of words: each position averages all earlier embeddings, then an MLP",
    "transformer": "pre-norm causal self-attention blocks (GPT), hand-written, as makemore's default",
}


def add_arguments(parser) -> None:
    add_json_flag(parser)


def description(name: str, builder) -> str:
    if name in DESCRIPTIONS:
        return DESCRIPTIONS[name]
    doc = importlib.import_module(builder.__module__).__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def describe(name: str, builder, names_block_size: int) -> dict:
    """One model as its own preset builds it for the names list (the built-in defaults without one)."""
    preset = name if name in preset_names() else None
    model_cfg = load_preset(preset)[0] if preset else ModelConfig()
    model_cfg = dataclasses.replace(model_cfg, model=name, vocab_size=NAMES_VOCAB)
    kind = example_kind(model_cfg)
    if kind == "sequence":  # as `charlab train` sizes it: the longest name + 1
        model_cfg = dataclasses.replace(model_cfg, block_size=names_block_size)
    model = build_model(model_cfg)
    return {"model": name, "kind": kind if model.trained_by_gradient else "counts", "preset": preset,
            "parameters": sum(p.numel() for p in model.parameters()), "block_size": model_cfg.block_size,
            "members": model_cfg.members, "description": description(name, builder)}


def run(args) -> int:
    names_block_size = max(map(len, read_items(None))) + 1
    order = list(DESCRIPTIONS)
    models = sorted(load_all().items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0]))
    rows = [describe(name, builder, names_block_size) for name, builder in models]
    if args.json:
        print_json(rows)
        return 0
    print(text_table(("model", "kind", "preset", "parameters", "block_size", "what it is"),
                     [(r["model"], r["kind"], r["preset"], r["parameters"], r["block_size"], r["description"])
                      for r in rows], (None, None, None, "{:,}", None, None)))
    print("\nparameters and block_size: the model's preset on the names list (27 symbols); a sequence model "
          "takes block_size\nfrom the data (its longest item + 1). `charlab train --model NAME` starts from "
          "NAME's preset;\n`--preset P --model NAME` keeps P's training settings with NAME's model settings.")
    return 0
