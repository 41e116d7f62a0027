"""charlab eval: the mean loss per character of each split, in eval mode."""

from __future__ import annotations

from charlab.cli.args import add_json_flag, load_run_noted, print_json, with_weights
from charlab.config import split_seed_of
from charlab.data import SPLITS, build_examples, read_items
from charlab.inference.evaluate import split_loss
from charlab.data.splits import make_splits

NAME = "eval"
ORDER = 30
HELP = "loss per split of a run (its own splits, or another word list split the same way)"


def add_arguments(parser) -> None:
    parser.add_argument("run", metavar="RUN", help="run directory made by `charlab train`")
    parser.add_argument("--data", metavar="FILE",
                        help="evaluate on this word list, split as the run was (its --split and its "
                             "--split-seed, else --seed)")
    add_json_flag(parser)


def run(args) -> int:
    loaded = load_run_noted(args.run)
    train_cfg = loaded.train_cfg
    splits = (loaded.splits if args.data is None
              else make_splits(read_items(args.data), train_cfg.split, split_seed_of(train_cfg)))
    kind, block = loaded.model.example_kind, loaded.model_cfg.block_size
    losses = {k: split_loss(loaded.model, build_examples(splits[k], loaded.vocab, kind, block))
              if splits[k] else None for k in SPLITS}
    if args.json:
        print_json(with_weights(losses, loaded))
    else:
        for k, v in losses.items():
            print(f"{k:5s} {v:.4f}" if v is not None else f"{k:5s} (empty)")
    return 0
