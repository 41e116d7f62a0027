"""charlab diagnose: a short probe of a finished run from its weights, the full-pass quantities, the
lecture's figures and a verdict table that names causes and fixes."""

from __future__ import annotations

import dataclasses

from charlab.cli.args import add_json_flag, load_run_noted, print_json, with_weights
from charlab.data import build_examples
from charlab.diagnostics.health import check
from charlab.diagnostics.plots import draw_all
from charlab.diagnostics.probe import full_pass
from charlab.diagnostics.recorder import Recorder, write_records
from charlab.diagnostics.runfiles import init_record, train_losses, training_init_step
from charlab.diagnostics.sampling import EVERY_STEP
from charlab.errors import CharlabError
from charlab.report.table import text_table
from charlab.rundir import DIAGNOSE_RECORDS, FIGURES_DIR, VERDICTS, atomic_write_json, read_metrics
from charlab.training.lr_schedule import Schedule
from charlab.training.loop import Trainer

NAME = "diagnose"
ORDER = 40
HELP = "check a finished run: statistics, the lecture's figures and verdicts with causes and fixes"
DESCRIPTION = ("Load a run, measure dead units, saturation and BatchNorm statistics over the whole training "
               "set, train a short probe from its weights recording every step (the weights on disk are not "
               f"changed), then write {DIAGNOSE_RECORDS}, {VERDICTS} and {FIGURES_DIR}/ into the run directory and "
               "print one verdict per rule: pass, warn or fail, with the likely cause and the fix.")
DIAGNOSE_STEPS = 100  # probe steps: enough for stable averages, a second or two on the lecture's MLP


def add_arguments(parser) -> None:
    parser.add_argument("run", metavar="RUN", help="run directory made by `charlab train`")
    parser.add_argument("--steps", type=int, default=DIAGNOSE_STEPS, metavar="N",
                        help="probe training steps from the run's weights, at its final learning rate")
    add_json_flag(parser)


def probe_records(loaded, steps: int) -> list[dict]:
    """Full-pass record first (the running statistics as saved), then ``steps`` recorded steps."""
    model, cfg = loaded.model, loaded.train_cfg
    kind, block = model.example_kind, loaded.model_cfg.block_size
    train = build_examples(loaded.splits["train"], loaded.vocab, kind, block)
    dev = build_examples(loaded.splits["dev"], loaded.vocab, kind, block)
    probe = full_pass(model, train, cfg.batch_size, cfg.seed)
    final_lr = Schedule(cfg).lr(max(cfg.steps - 1, 0))
    probe_cfg = dataclasses.replace(cfg, steps=steps, schedule="constant", lr=final_lr, eval_interval=steps + 1)
    recorder = Recorder(schedule=EVERY_STEP, probe=False, init_loss=False)
    Trainer(model, train, dev, probe_cfg, [recorder]).fit()
    return recorder.records + [probe]


def verdict_table(verdicts: list[dict]) -> str:
    rows = [(v["status"].upper(), v["rule"], v["layer"] or "-", v["value"], v["threshold"]) for v in verdicts]
    lines = [text_table(("status", "rule", "layer", "value", "threshold"), rows)]
    for v in verdicts:
        if v["status"] != "pass":
            lines.append(f"\n{v['status'].upper()} {v['rule']} ({v['layer'] or 'model'}): {v['cause']}.\n"
                         f"  fix: {v['fix']}.")
    return "\n".join(lines)


def run(args) -> int:
    if args.steps < 1:
        raise CharlabError(f"--steps must be at least 1, got {args.steps}")
    loaded = load_run_noted(args.run)
    if not loaded.model.trained_by_gradient:
        raise CharlabError(f"{args.run} holds a {loaded.model_cfg.model!r} model fit by counting; diagnose "
                           "needs a model trained by gradient descent")
    metrics = read_metrics(loaded.path)
    records = probe_records(loaded, args.steps)
    init, init_step = init_record(metrics, loaded.vocab.size), training_init_step(loaded.path)
    records += [r for r in (init, init_step) if r]
    verdicts = [v.to_dict() for v in check(records)]
    write_records(loaded.path / DIAGNOSE_RECORDS, records)
    atomic_write_json(loaded.path / VERDICTS, verdicts)
    draw_all(records, train_losses(metrics), loaded.path / FIGURES_DIR)
    if args.json:
        print_json(with_weights(verdicts, loaded))
    else:
        print(verdict_table(verdicts))
        print(f"\nrecords: {loaded.path / DIAGNOSE_RECORDS}; figures: {loaded.path / FIGURES_DIR}/")
    return 0
