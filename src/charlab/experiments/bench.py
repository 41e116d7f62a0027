"""Speed, measured side by side against the lecture's code (``charlab/experiments/reference.py``).

Every figure is a ratio of two timings taken in the same invocation, interleaved (reference,
charlab, reference, charlab, ...) so that a busy machine slows both alike; each row quotes the
median over the repeats. ``charlab bench`` and ``python benchmarks/run.py`` run ``run_all``.

Rows:

- ``default``: WHOLE PROCESS (subprocess start to exit: imports, data, compile, training, final
  losses), ``charlab train --preset mlp-bn`` as a user types it (``--fast-path auto``) against the
  reference script, at ``--steps`` steps (200,000 is the lecture's run; the default is a stated
  fraction), on a cold compile cache (a fresh ``TORCHINDUCTOR_CACHE_DIR``) and a warm one; the dev
  loss against the autograd path's (``--fast-path off``, one run);
- ``train``: the steady rate in one process (``Trainer.fit`` alone, mlp-bn, batch 32): reference
  against each path (autograd, the hand-derived step, compiled chunks from a warm cache), and the
  machine's limit for this step (its matrix multiplies alone);
- ``presets``: each window preset's default path against its ``--fast-path off`` (autograd) path, in
  one process: the eager hand-derived step (what ``auto`` runs below ``AUTO_COMPILE_MIN_STEPS``) and
  the compiled chunks (what it switches to on longer SGD runs), from a warm cache;
- ``fast_preset``: ``charlab train --preset fast`` whole process (its final dev must be <=
  ``TARGET_DEV``) over the reference's 200k-step wall time, extrapolated from its measured rate;
- ``sequence``: ``benchmarks/sequence_speed.py --peer PATH`` (sequence presets vs makemore.py) when
  that script and the peer exist, else a note;
- ``sampling``: 10,000 names at once against the reference's one-at-a-time loop;
- ``fold``: dev-set inference with BatchNorm folded into the Linear against unfolded;
- ``data``: building the examples of 100k..1M items, time and peak memory, one subprocess per size.
"""

from __future__ import annotations

import importlib.util
import json
import os
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
from charlab.training import compiled
from charlab.training.hand_backward import UNROLL_STEPS
from charlab.training.steps import AUTO_COMPILE_MIN_STEPS
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
PROCESS_STEPS = 100_000  # default --steps of the whole-process rows: half the lecture's run
RATE_STEPS = 4000  # steps per in-process timing (train, presets rows)
WINDOW_PRESETS = ("mlp", "mlp-bn", "deep-bn", "wavenet")
WORKER_WAIT_S = 300  # at most this long for a cold run's background compile to finish (not timed)
MATMUL_REPEATS = 2000  # steps of matrix multiplies timed for the machine's limit


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
    compiled.use_cache_dir()
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
    row["matmul_limit_steps_per_s"] = matmul_limit()
    return row, {"model": runs["compile"], "reference": (params, running)}


def matmul_limit(batch: int = 32, repeats: int = MATMUL_REPEATS) -> float:
    """Steps/s of mlp-bn's matrix multiplies alone (forward 2, backward 4, batch 32): the machine's
    limit for this step, whatever the framework."""
    g = torch.Generator().manual_seed(SEED)
    x, w1 = torch.randn(batch, 30, generator=g), torch.randn(200, 30, generator=g)
    h, w2 = torch.randn(batch, 200, generator=g), torch.randn(27, 200, generator=g)
    d = torch.randn(batch, 27, generator=g)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(x, w1.t()), torch.mm(h, w2.t()), torch.mm(d.t(), h), torch.mm(d, w2)
            torch.mm(h.t(), x), torch.mm(h, w1)
        times.append(time.perf_counter() - start)
    return repeats / median(times)


def train_command(*flags: str) -> list[str]:
    """``charlab train`` with its default flags but ``flags`` (``--json``: the figures, parsed here)."""
    return [sys.executable, "-m", "charlab", "train", "--json", *flags]


def reference_command(path: Path, steps: int) -> list[str]:
    if Path(path).resolve() == Path(reference.__file__).resolve():
        return [sys.executable, "-m", "charlab.experiments.reference", "--steps", str(steps)]
    return [sys.executable, str(path), "--steps", str(steps)]


def last_json(text: str) -> dict:
    """The JSON document a command printed last (the reference prints progress lines first)."""
    start = text.rfind("\n{") + 1 if not text.startswith("{") else 0
    return json.loads(text[start:])


def timed_process(cmd: list[str], cache: str | Path | None = None) -> tuple[float, dict, str]:
    """Wall seconds from start to exit, the JSON it printed, its stderr; ``cache``: the compile cache."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if cache is not None:
        env[compiled.CACHE_ENV] = str(cache)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise CharlabError(f"{' '.join(cmd[:6])}... failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds, last_json(done.stdout), done.stderr.strip()


def wait_for_compile(cache: Path, timeout_s: float = WORKER_WAIT_S) -> None:
    """Until the background compile a run left behind has written its marker (``compiled.py``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not list(cache.glob("charlab-sgd-steps-*.done")):
        time.sleep(1)


def bench_default(ref_path: Path, steps: int, repeats: int) -> dict:
    """``charlab train --preset mlp-bn`` (the default path) against the reference, whole process,
    cold and warm compile cache, interleaved; the dev loss against the autograd path's."""
    base = ["--preset", "mlp-bn", "--steps", str(steps)]  # default flags otherwise: evaluations, samples
    seconds = {"reference": [], "cold": [], "warm": []}
    devs, notes, ref_200k = {}, set(), []
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm-cache"
        timed_process(train_command(*base[:2], "--steps", str(2 * UNROLL_STEPS), "--fast-path", "compile",
                                    "--out", str(Path(tmp) / "prefill")), warm)  # fills the warm cache
        for n in range(repeats):
            ref_s, ref_doc, _ = timed_process(reference_command(ref_path, steps))
            seconds["reference"].append(ref_s)
            ref_200k.append(ref_s + ref_doc["seconds"] * (LECTURE_STEPS / steps - 1))  # its startup once, its rate
            devs["reference"] = ref_doc["dev"]
            for cache in ("cold", "warm"):
                folder = Path(tmp) / f"cold-cache-{n}" if cache == "cold" else warm
                s, doc, err = timed_process(train_command(*base, "--out", str(Path(tmp) / f"{cache}-{n}")), folder)
                seconds[cache].append(s)
                if cache == "cold":
                    wait_for_compile(folder)  # its worker, left to fill the cache, must not slow the next timing
                devs[cache] = doc["losses"]["dev"]
                notes.update(line for line in err.splitlines() if "compiling the SGD steps failed" in line)
        off_s, off_doc, _ = timed_process(train_command(*base, "--fast-path", "off", "--out", str(Path(tmp) / "off")))
    row = {"steps": steps, "repeats": repeats, "seconds": seconds, "autograd_s": off_s,
           "dev": {**devs, "autograd": off_doc["losses"]["dev"]}, "notes": sorted(notes),
           "reference_200k_s_extrapolated": median(ref_200k)}  # whole process: startup + 200k at its rate
    for cache in ("cold", "warm"):
        row[f"x_reference_{cache}"] = median([r / c for r, c in zip(seconds["reference"], seconds[cache])])
        row[f"dev_minus_autograd_{cache}"] = devs[cache] - off_doc["losses"]["dev"]
    row["x_autograd_warm"] = off_s / median(seconds["warm"])
    return row


def bench_presets(steps: int, repeats: int) -> dict:
    """Each window preset in one process: autograd (``--fast-path off``), the eager hand-derived step
    and the compiled chunks (warm cache; compiled once first), interleaved; steps/s."""
    compiled.use_cache_dir()
    rows = {}
    for preset in WINDOW_PRESETS:
        start = time.perf_counter()
        train_charlab(2 * UNROLL_STEPS, preset=preset, fast_path="compile")
        compile_s = time.perf_counter() - start
        seconds = {"off": [], "eager": [], "compile": []}
        devs = {}
        for _ in range(repeats):
            for path in seconds:
                run = train_charlab(steps, preset=preset, fast_path=path)
                seconds[path].append(run.wall_time_s)
                devs[path] = run.losses["dev"]
        rows[preset] = {"steps": steps, "compile_s": compile_s, "seconds": seconds, "dev": devs,
                        **{f"{path}_steps_per_s": steps / median(t) for path, t in seconds.items()},
                        **{f"x_off_{path}": median([o / t for o, t in zip(seconds["off"], seconds[path])])
                           for path in ("eager", "compile")}}
    return rows


def bench_fast_preset_process(ref_200k_s: float, repeats: int) -> dict:
    """``charlab train --preset fast`` whole process against the reference's 200k-step wall time."""
    fast_s, devs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(repeats):
            s, doc, _ = timed_process(train_command("--preset", "fast", "--out", str(Path(tmp) / f"fast-{n}")))
            fast_s.append(s)
            devs.append(doc["losses"]["dev"])
    return {"reference_200k_s_extrapolated": ref_200k_s, "fast_s": median(fast_s), "whole_process": True,
            "fraction_of_reference": median(fast_s) / ref_200k_s, "fast_dev": median(devs),
            "target_dev": TARGET_DEV, "seconds": {"fast": fast_s}}


def sequence_script() -> Path:
    """``benchmarks/sequence_speed.py`` of the checkout charlab runs from (absent when installed)."""
    return Path(__file__).resolve().parents[3] / "benchmarks" / "sequence_speed.py"


def bench_sequence(peer: str | None, best_steps: int = 0) -> dict:
    """``benchmarks/sequence_speed.py``: the sequence presets against makemore.py per step, and with
    ``best_steps`` the ``best`` preset's whole-process wall time on the hand-written and fast paths."""
    script = sequence_script()
    if not script.is_file():
        return {"skipped": f"{script} is not here (an installed charlab has no benchmarks/)"}
    if not peer or not Path(peer).is_file():
        return {"skipped": f"no makemore.py at {peer!r}: pass --peer PATH"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sequence.json"
        best = ["--best-steps", str(best_steps)] if best_steps else []
        done = subprocess.run([sys.executable, str(script), "--peer", str(peer), "--json", str(out), *best],
                              capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        if done.returncode:
            return {"skipped": f"sequence_speed.py failed: {done.stderr.strip().splitlines()[-1:]}"}
        return {"table": done.stdout.strip(), "rows": json.loads(out.read_text())}


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


def run_all(repeats: int = 3, steps: int = PROCESS_STEPS, reference: str | Path | None = None,
            jobs: tuple[str, ...] = ("default", "train", "presets", "fast_preset", "sequence", "sampling", "fold",
                                     "data"), rate_steps: int = RATE_STEPS, peer: str | None = None,
            best_steps: int = 0) -> dict:
    """Every row, against the lecture reference (``find_reference``); one thread, as charlab
    trains by default. ``steps``: the whole-process rows; ``rate_steps``: the in-process ones."""
    torch.set_num_threads(1)
    ref_path = find_reference(reference)
    ref = load_reference(ref_path)
    stoi, itos, ref_data = ref.load_data(SEED)
    results = {"repeats": repeats, "torch": torch.__version__, "threads": 1, "cpus": compiled.cpus(),
               "auto_compile_min_steps": AUTO_COMPILE_MIN_STEPS, "unroll": UNROLL_STEPS}
    if "default" in jobs:
        results["default"] = bench_default(ref_path, steps, repeats)
    if {"train", "sampling", "fold"} & set(jobs):
        results["train"], trained = bench_train(ref, ref_data, len(stoi), rate_steps, repeats)
    if "presets" in jobs:
        results["presets"] = bench_presets(rate_steps, repeats)
    if "fast_preset" in jobs:
        if "default" in results:
            results["fast_preset"] = bench_fast_preset_process(results["default"]["reference_200k_s_extrapolated"],
                                                               repeats)
        else:
            results["fast_preset"] = bench_fast_preset(ref, ref_data, len(stoi), rate_steps, repeats)
    if "sequence" in jobs:
        results["sequence"] = bench_sequence(peer, best_steps)
    if "sampling" in jobs:
        results["sampling"] = bench_sampling(ref, trained["reference"], itos, trained["model"], repeats)
    if "fold" in jobs:
        results["fold"] = bench_fold(trained["model"], repeats)
    if "data" in jobs:
        results["data"] = bench_data()
    return results


TABLE_HEADER = ("job", "lecture reference", "charlab", "ratio (median)", "check")  # rows: text, units in the cells


def _default_rows(d: dict) -> list[list[str]]:
    ref = median(d["seconds"]["reference"])
    rows = []
    for cache, what in (("cold", "cold compile cache (first run on a machine)"), ("warm", "warm compile cache")):
        rows.append([f"`charlab train --preset mlp-bn --steps {d['steps']}` (default), whole process, {what}",
                     f"{ref:.1f} s", f"{median(d['seconds'][cache]):.1f} s", f"{d[f'x_reference_{cache}']:.2f}x",
                     f"dev {d['dev'][cache]:.5f}; autograd {d['dev']['autograd']:.5f} "
                     f"({d[f'dev_minus_autograd_{cache}']:+.1e}); reference {d['dev']['reference']:.5f}"])
    rows.append(["the same with `--fast-path off` (autograd), whole process, one run", f"{ref:.1f} s",
                 f"{d['autograd_s']:.1f} s", f"{ref / d['autograd_s']:.2f}x",
                 f"default (warm) {d['x_autograd_warm']:.2f}x faster"])
    return rows


def _train_rows(t: dict) -> list[list[str]]:
    ref = t["reference"]
    labels = {"off": "autograd (`--fast-path off`)", "eager": "hand-derived backward (`--fast-path eager`)",
              "compile": f"compiled, {UNROLL_STEPS} steps a graph (`--fast-path compile`, warm cache; "
                         f"cold or warm load {t['compile_s']:.0f} s, not counted here)"}
    rows = [[f"mlp-bn, batch 32, {t['steps']} steps in one process: {label}", f"{ref['steps_per_s']:.0f} steps/s",
             f"{t[f'charlab_{path}']['steps_per_s']:.0f} steps/s", f"{t[f'charlab_{path}']['x_reference']:.2f}x",
             f"dev {t[f'charlab_{path}']['dev']:.4f} vs {ref['dev']:.4f}"] for path, label in labels.items()]
    if "matmul_limit_steps_per_s" in t:
        limit = t["matmul_limit_steps_per_s"]
        rows.append(["the step's matrix multiplies alone (the machine's limit)", "", f"{limit:.0f} steps/s",
                     f"compiled at {t['charlab_compile']['steps_per_s'] / limit:.0%} of it", ""])
    return rows


def _preset_rows(p: dict) -> list[list[str]]:
    rows = []
    for preset, r in p.items():
        rows.append([f"`{preset}` in one process, {r['steps']} steps: default vs `--fast-path off`",
                     f"autograd {r['off_steps_per_s']:.0f} steps/s",
                     f"eager {r['eager_steps_per_s']:.0f}, compiled {r['compile_steps_per_s']:.0f} steps/s",
                     f"{r['x_off_eager']:.2f}x eager, {r['x_off_compile']:.2f}x compiled",
                     f"dev {r['dev']['eager']:.4f} / {r['dev']['compile']:.4f} vs {r['dev']['off']:.4f}"])
    return rows


def table_rows(r: dict) -> list[list[str]]:
    rows = _default_rows(r["default"]) if "default" in r else []
    rows += _train_rows(r["train"]) if "train" in r else []
    rows += _preset_rows(r["presets"]) if "presets" in r else []
    if "fast_preset" in r:
        f = r["fast_preset"]
        whole = "whole process" if f.get("whole_process") else "whole `charlab.train`"
        ref_steps = r["default"]["steps"] if "default" in r else f.get("reference_measured_steps")
        measured = ("measured, whole process" if ref_steps == LECTURE_STEPS else
                    f"whole process: startup + 200k steps at its rate over {ref_steps:,}" if "default" in r
                    else f"extrapolated from {ref_steps:,} steps")
        rows.append([f"`fast` preset to dev <= {f['target_dev']} ({whole})",
                     f"{f['reference_200k_s_extrapolated']:.0f} s for 200k steps ({measured})",
                     f"{f['fast_s']:.1f} s", f"{f['fraction_of_reference']:.3f} of the time", f"dev {f['fast_dev']:.4f}"])
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
    for note in results.get("default", {}).get("notes", []):
        lines.append(f"\nnote: {note}")
    if "data" in results:
        d = results["data"]
        lines.append(f"\ndata {d['item_growth']:.0f}x the items: build time x{d['time_growth']:.1f}, "
                     f"peak memory x{d['memory_growth']:.1f} (linear: ~x{d['item_growth']:.0f})")
    if "sequence" in results:
        seq = results["sequence"]
        lines.append(f"\nsequence models vs makemore.py: {seq['skipped']}" if "skipped" in seq
                     else f"\nsequence models vs makemore.py (benchmarks/sequence_speed.py):\n{seq['table']}")
    return "\n".join(lines)
