"""Speed, measured side by side against the lecture's code (``charlab/experiments/reference.py``).

Every figure is a ratio of two timings taken in the same invocation, interleaved (reference,
charlab, reference, charlab, ...) so that a busy machine slows both alike; each row quotes the
median over the repeats. ``charlab bench`` and ``python benchmarks/run.py`` run ``run_all``.

Rows:

- ``train``: mlp-bn at batch 32 for the same number of steps, the reference against charlab's
  autograd path, its hand-derived backward pass, and that pass compiled (steady state; the compile
  itself is reported apart); final dev losses side by side;
- ``fast_preset``: wall time of the ``fast`` preset (its final dev must be <= ``TARGET_DEV``) over
  the reference's 200k-step wall time, extrapolated from its measured steps/s;
- ``sampling``: 10,000 names at once against the reference's one-at-a-time loop;
- ``fold``: dev-set inference with BatchNorm folded into the Linear against unfolded;
- ``data``: building the examples of 100k..1M items, time and peak memory, one subprocess per size.
"""

from __future__ import annotations

import importlib.util
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import charlab
from charlab.api import resolve_config
from charlab.data import SPLITS, Vocab, build_examples, read_items
from charlab.data.splits import split_items
from charlab.errors import CharlabError
from charlab.experiments import reference
from charlab.experiments.reference import LECTURE_STEPS  # the run the fast preset is measured against
from charlab.inference.evaluate import split_loss
from charlab.training.hand_backward import UNROLL_STEPS
from charlab.inference.fold import fold_batchnorm
from charlab.models import build_model
from charlab.report.table import markdown_table
from charlab.inference.sample import sample_texts

TARGET_DEV = 2.10  # the lecture's dev loss on names (2.1048 after 200k steps), rounded
SAMPLE_N = 10_000  # names sampled by charlab per repeat
REFERENCE_SAMPLE_N = 200  # names the one-at-a-time reference samples per repeat (its rate is flat in n)
DATA_SIZES = (100_000, 300_000, 1_000_000)  # items; one subprocess each, so peak memory is per size
FOLD_REPEATS_INNER = 5  # dev-set passes per timing: one pass is too short to time alone (its time: the fold row)
SEED = 42


def find_reference(path: str | Path | None = None) -> Path:
    """The lecture reference: ``path`` when given, else the one inside the package
    (``charlab/experiments/reference.py``), so an installed charlab needs no checkout."""
    if path is None:
        return Path(reference.__file__)
    if not Path(path).is_file():
        raise CharlabError(f"--reference {path} is not a file; omit --reference to use the packaged one")
    return Path(path)


def load_reference(path: Path):
    """The packaged reference module, or the file at ``path`` loaded as a module."""
    if Path(path).resolve() == Path(reference.__file__).resolve():
        return reference
    spec = importlib.util.spec_from_file_location("charlab_bench_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def median(values: list[float]) -> float:
    return statistics.median(values)


def train_charlab(steps: int, preset: str = "mlp-bn", **overrides):
    """A charlab run without evaluations in between; its ``wall_time_s`` is ``Trainer.fit`` alone."""
    overrides.setdefault("eval_interval", steps)
    return charlab.train(preset=preset, steps=steps, n_samples=0, **overrides)


def bench_train(ref, ref_data, vocab_size: int, steps: int, repeats: int) -> tuple[dict, dict]:
    """mlp-bn, batch 32, ``steps`` steps: the reference against each charlab path, interleaved."""
    start = time.perf_counter()
    train_charlab(2 * UNROLL_STEPS, fast_path="compile")  # compiles (or loads the cache)
    compile_s = time.perf_counter() - start
    paths = ("off", "eager", "compile")
    seconds = {name: [] for name in ("reference", *paths)}
    runs = {}
    for _ in range(repeats):
        params, running, _, ref_s = ref.train(steps, SEED, ref_data, vocab_size)
        seconds["reference"].append(ref_s)
        for path in paths:
            runs[path] = train_charlab(steps, fast_path=path)
            seconds[path].append(runs[path].wall_time_s)
    ref_dev = ref.split_loss(params, running, *ref_data["dev"])
    row = {"steps": steps, "batch_size": 32, "compile_s": compile_s,
           "reference": {"steps_per_s": steps / median(seconds["reference"]), "dev": ref_dev}}
    for path in paths:
        ratios = [r / c for r, c in zip(seconds["reference"], seconds[path])]
        row[f"charlab_{path}"] = {"steps_per_s": steps / median(seconds[path]), "x_reference": median(ratios),
                                  "dev": runs[path].losses["dev"],
                                  "dev_minus_reference": runs[path].losses["dev"] - ref_dev}
    row["seconds"] = seconds
    return row, {"model": runs["compile"], "reference": (params, running)}


def bench_fast_preset(ref, ref_data, vocab_size: int, ref_steps: int, repeats: int) -> dict:
    """Wall time of ``charlab.train(preset="fast")`` (data, training, final losses) over the
    reference's 200k-step time, extrapolated from ``ref_steps`` measured steps."""
    ref_200k, fast_s, devs = [], [], []
    for _ in range(repeats):
        _, _, _, ref_s = ref.train(ref_steps, SEED, ref_data, vocab_size)
        ref_200k.append(ref_s * LECTURE_STEPS / ref_steps)
        start = time.perf_counter()
        result = charlab.train(preset="fast", n_samples=0)
        fast_s.append(time.perf_counter() - start)
        devs.append(result.losses["dev"])
    return {"reference_200k_s_extrapolated": median(ref_200k), "reference_measured_steps": ref_steps,
            "fast_s": median(fast_s), "fraction_of_reference": median([f / r for f, r in zip(fast_s, ref_200k)]),
            "fast_dev": median(devs), "target_dev": TARGET_DEV, "fast_steps": result.train_cfg.steps,
            "seconds": {"reference_200k": ref_200k, "fast": fast_s}}


def bench_sampling(ref, ref_model, itos, run, repeats: int) -> dict:
    """Names per second: the reference one at a time, charlab ``SAMPLE_N`` at once."""
    params, running = ref_model
    ref_rates, rates = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        ref.sample_names(params, running, itos, REFERENCE_SAMPLE_N, SEED)
        ref_rates.append(REFERENCE_SAMPLE_N / (time.perf_counter() - start))
        start = time.perf_counter()
        sample_texts(run.model, run.vocab, run.splits, SAMPLE_N, SEED)
        rates.append(SAMPLE_N / (time.perf_counter() - start))
    return {"reference_names_per_s": median(ref_rates), "reference_n": REFERENCE_SAMPLE_N,
            "charlab_names_per_s": median(rates), "charlab_n": SAMPLE_N,
            "x_reference": median([c / r for c, r in zip(rates, ref_rates)])}


def bench_fold(run, repeats: int) -> dict:
    """Dev-set inference (``split_loss``) with BatchNorm folded into the Linear against unfolded."""
    dev = build_examples(run.splits["dev"], run.vocab, run.model.example_kind, run.model_cfg.block_size)
    folded = fold_batchnorm(run.model)
    times = {"unfolded": [], "folded": []}
    for _ in range(repeats):
        for name, model in (("unfolded", run.model), ("folded", folded)):
            start = time.perf_counter()
            for _ in range(FOLD_REPEATS_INNER):
                loss = split_loss(model, dev)
            times[name].append((time.perf_counter() - start) / FOLD_REPEATS_INNER)
    return {"unfolded_ms": 1e3 * median(times["unfolded"]), "folded_ms": 1e3 * median(times["folded"]),
            "x_unfolded": median([u / f for u, f in zip(times["unfolded"], times["folded"])]),
            "dev_unfolded": split_loss(run.model, dev), "dev_folded": loss, "rows": len(dev)}


def peak_rss() -> int:
    """This process's peak resident memory in bytes: VmHWM (Linux), else ru_maxrss. ru_maxrss alone
    would not do: Linux carries the parent's high-water mark across fork and exec."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def measure_data(path: str, block_size: int = 3) -> dict:
    """In a fresh process: read, split and build window examples; then one evaluation epoch."""
    before = peak_rss()
    start = time.perf_counter()
    items = read_items(path)
    vocab = Vocab.from_items(items)
    splits = split_items(items, SEED)
    examples = {k: build_examples(splits[k], vocab, "window", block_size) for k in SPLITS}
    build_s = time.perf_counter() - start
    peak = peak_rss()
    model_cfg, _ = resolve_config("mlp-bn")
    model_cfg.vocab_size = vocab.size
    model = build_model(model_cfg, torch.Generator().manual_seed(SEED))
    start = time.perf_counter()
    split_loss(model, examples["train"])
    return {"items": len(items), "examples": sum(len(e) for e in examples.values()), "build_s": build_s,
            "peak_build_mb": (peak - before) / 2**20, "eval_epoch_s": time.perf_counter() - start}


def bench_data(sizes=DATA_SIZES) -> dict:
    """One subprocess per size over the first n items of a 1M-item list drawn from the names."""
    names = read_items(None)
    pool = random.Random(SEED).choices(names, k=max(sizes))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"items-{n}.txt"
            path.write_text("\n".join(pool[:n]) + "\n", encoding="utf-8")
            code = f"import json, charlab.experiments.bench as b; print(json.dumps(b.measure_data({str(path)!r})))"
            out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first, last = rows[0], rows[-1]
    scale = last["items"] / first["items"]
    return {"sizes": rows, "time_growth": last["build_s"] / first["build_s"], "item_growth": scale,
            "memory_growth": last["peak_build_mb"] / max(first["peak_build_mb"], 1e-9)}


def run_all(repeats: int = 3, steps: int = 4000, reference: str | Path | None = None,
            jobs: tuple[str, ...] = ("train", "fast_preset", "sampling", "fold", "data")) -> dict:
    """Every row, against the lecture reference (``find_reference``); one thread, as charlab
    trains by default."""
    torch.set_num_threads(1)
    ref = load_reference(find_reference(reference))
    stoi, itos, ref_data = ref.load_data(SEED)
    results = {"repeats": repeats, "torch": torch.__version__, "threads": 1}
    if {"train", "sampling", "fold"} & set(jobs):
        results["train"], trained = bench_train(ref, ref_data, len(stoi), steps, repeats)
    if "fast_preset" in jobs:
        results["fast_preset"] = bench_fast_preset(ref, ref_data, len(stoi), steps, repeats)
    if "sampling" in jobs:
        results["sampling"] = bench_sampling(ref, trained["reference"], itos, trained["model"], repeats)
    if "fold" in jobs:
        results["fold"] = bench_fold(trained["model"], repeats)
    if "data" in jobs:
        results["data"] = bench_data()
    return results


TABLE_HEADER = ("job", "lecture reference", "charlab", "ratio (median)", "check")  # rows: text, units in the cells


def _train_rows(t: dict) -> list[list[str]]:
    ref = t["reference"]
    labels = {"off": "autograd (default)", "eager": "hand-derived backward (`--fast-path eager`)",
              "compile": f"compiled, {UNROLL_STEPS} steps a graph (`--fast-path compile`; "
                         f"compile {t['compile_s']:.0f} s, not counted)"}
    return [[f"mlp-bn, batch 32, {t['steps']} steps: {label}", f"{ref['steps_per_s']:.0f} steps/s",
             f"{t[f'charlab_{path}']['steps_per_s']:.0f} steps/s", f"{t[f'charlab_{path}']['x_reference']:.2f}x",
             f"dev {t[f'charlab_{path}']['dev']:.4f} vs {ref['dev']:.4f}"] for path, label in labels.items()]


def table_rows(r: dict) -> list[list[str]]:
    rows = _train_rows(r["train"]) if "train" in r else []
    if "fast_preset" in r:
        f = r["fast_preset"]
        rows.append([f"`fast` preset to dev <= {f['target_dev']} (whole `charlab.train`)",
                     f"{f['reference_200k_s_extrapolated']:.0f} s for 200k steps (extrapolated from "
                     f"{f['reference_measured_steps']})", f"{f['fast_s']:.1f} s",
                     f"{f['fraction_of_reference']:.3f} of the time", f"dev {f['fast_dev']:.4f}"])
    if "sampling" in r:
        s = r["sampling"]
        rows.append([f"sampling {s['charlab_n']:,} names", f"{s['reference_names_per_s']:.0f} names/s (one at a time)",
                     f"{s['charlab_names_per_s']:.0f} names/s", f"{s['x_reference']:.0f}x", ""])
    if "fold" in r:
        d = r["fold"]
        rows.append([f"dev-set inference ({d['rows']:,} rows), BatchNorm folded", f"unfolded {d['unfolded_ms']:.1f} ms",
                     f"folded {d['folded_ms']:.1f} ms", f"{d['x_unfolded']:.2f}x",
                     f"dev {d['dev_folded']:.4f} vs {d['dev_unfolded']:.4f}"])
    for size in r.get("data", {}).get("sizes", []):
        rows.append([f"data: {size['items']:,} items -> {size['examples']:,} examples", "",
                     f"build {size['build_s']:.2f} s, peak +{size['peak_build_mb']:.0f} MB",
                     f"eval epoch {size['eval_epoch_s']:.2f} s", ""])
    return rows


def format_table(results: dict) -> str:
    lines = [markdown_table(TABLE_HEADER, table_rows(results))]
    if "data" in results:
        d = results["data"]
        lines.append(f"\ndata {d['item_growth']:.0f}x the items: build time x{d['time_growth']:.1f}, "
                     f"peak memory x{d['memory_growth']:.1f} (linear: ~x{d['item_growth']:.0f})")
    return "\n".join(lines)
