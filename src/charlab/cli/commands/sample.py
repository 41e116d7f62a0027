"""charlab sample: draw new items from a trained run."""

from __future__ import annotations

from charlab.cli.args import add_json_flag, load_run_noted, print_json, with_weights
from charlab.config import DEFAULT_SEED
from charlab.report.escape import terminal
from charlab.inference.sample import sample_texts

NAME = "sample"
ORDER = 20
HELP = "sample new items from a run, each marked new / train / dev / test"
DEFAULT_N = 20


def add_arguments(parser) -> None:
    parser.add_argument("run", metavar="RUN", help="run directory made by `charlab train`")
    parser.add_argument("-n", type=int, default=DEFAULT_N, help="how many samples")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="sampling seed (same seed, same samples)")
    parser.add_argument("--temperature", type=float, default=1.0, help="divide logits by this (<1: safer, >1: wilder)")
    parser.add_argument("--top-k", type=int, default=None, metavar="K", help="sample only from the K likeliest characters")
    parser.add_argument("--prefix", default="", metavar="P", help="start every sample with this text")
    add_json_flag(parser)


def run(args) -> int:
    loaded = load_run_noted(args.run)
    samples = sample_texts(loaded.model, loaded.vocab, loaded.splits, args.n, args.seed, args.temperature,
                           args.top_k, args.prefix)
    if args.json:
        print_json(with_weights(samples, loaded))
    else:
        for s in samples:
            print(terminal(s["text"]) + ("" if s["novelty"] == "new" else f"\t({s['novelty']})"))
    return 0
