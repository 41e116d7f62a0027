"""charlab score: how likely a run finds given words (mean NLL per character, lower = likelier)."""

from __future__ import annotations

from charlab.cli.args import add_json_flag, load_run_noted, print_json, with_weights
from charlab.report.escape import terminal
from charlab.data import build_examples
from charlab.errors import CharlabError
from charlab.rundir import CONFIG
from charlab.inference.evaluate import item_scores

NAME = "score"
ORDER = 40
HELP = "score words: mean negative log-likelihood per character, end boundary included"


def add_arguments(parser) -> None:
    parser.add_argument("run", metavar="RUN", help="run directory made by `charlab train`")
    parser.add_argument("words", nargs="+", metavar="WORD", help="words to score")
    add_json_flag(parser)


def run(args) -> int:
    loaded = load_run_noted(args.run)
    words = [w.strip() for w in args.words]
    if not all(words):
        raise CharlabError("a WORD is empty; pass non-empty words")
    block = loaded.model_cfg.block_size
    longest = max(words, key=len)
    if loaded.model.example_kind == "sequence" and len(longest) + 1 > block:
        raise CharlabError(f"{terminal(longest)!r} has {len(longest)} characters; this run's sequence model reads "
                           f"items of at most {block - 1} (its block_size {block}, from {loaded.path / CONFIG})")
    examples = build_examples(words, loaded.vocab, loaded.model.example_kind, loaded.model_cfg.block_size)
    scores = item_scores(loaded.model, examples, len(words)).tolist()
    rows = [{"word": w, "nll_per_char": s} for w, s in zip(words, scores)]
    if args.json:
        print_json(with_weights(rows, loaded))
    else:
        for r in rows:
            print(f"{r['nll_per_char']:.4f}  {terminal(r['word'])}")
    return 0
