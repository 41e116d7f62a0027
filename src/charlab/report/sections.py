"""The sections of ``report.html``, one function each: ``(run folder) -> HTML``, or ``""`` when the
run has nothing for that section, so the page simply omits it."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

from charlab.diagnostics import plots
from charlab.diagnostics.health import check
from charlab.diagnostics.runfiles import init_record, load_diagnostics
from charlab.report.html import asset, esc, figure_html, png_file_html, read_json, section, table
from charlab.rundir import (CONFIG, DIAGNOSE_RECORDS, DIAGNOSTICS, SAMPLES, SPLITS_FILE, TENSORBOARD_DIR, VERDICTS,
                            VOCAB, read_metrics)

FOLD_KEYS = ("max_abs_diff", "max_rel_diff", "loss", "loss_folded", "speedup", "same_samples", "batchnorms_folded")


def config_section(run: Path) -> str:
    if not (run / CONFIG).is_file():
        return ""
    meta = read_json(run / CONFIG)
    parts = []
    for name in ("model", "train"):
        values = meta.get(name) or {}
        parts.append(f"<div><h3>{name}</h3>{table(['setting', 'value'], [[k, v] for k, v in values.items()])}</div>")
    extra = [[k, shlex.join(map(str, v)) if isinstance(v, list) else v] for k, v in meta.items()
             if k not in ("model", "train", "format_version")]
    body = '<div class="grid">' + "".join(parts) + "</div>" + (table(["", ""], extra) if extra else "")
    if (run / TENSORBOARD_DIR).is_dir():
        body += f"<p>TensorBoard event files: <code>tensorboard --logdir {esc(run / TENSORBOARD_DIR)}</code></p>"
    return section("Configuration", body, "config")


def loss_figure(train: list[float], evals: list[dict]):
    fig = plots.plot_loss(train)
    ax = fig.axes[0]
    points = [(e["step"], math.log10(e["dev"])) for e in evals if e.get("dev") and e["dev"] > 0]
    if points:
        ax.plot(*zip(*points), "o-", label="dev (evaluations)")
        ax.legend(fontsize="small")
    return fig


def losses_section(run: Path) -> str:
    metrics = read_metrics(run)
    if not metrics:
        return ""
    train = [r["loss"] for r in sorted((r for r in metrics if r.get("event") == "train"), key=lambda r: r["step"])]
    evals = [r for r in metrics if r.get("event") == "eval"]
    finals = [r for r in metrics if r.get("event") == "final"]
    body = ""
    if finals:
        final = finals[-1]
        rows = [[k, final[k]] for k in ("train", "dev", "test") if final.get(k) is not None]
        rows += [["best step", final.get("best_step")], ["steps", final.get("step")],
                 ["wall time (s)", final.get("wall_time_s")]]
        body += table(["", "loss (nats per character)"], [r for r in rows if r[1] is not None])
    if train:
        body += figure_html(loss_figure(train, evals), "training loss (log10, windowed mean) and dev evaluations")
    return section("Losses", body, "losses") if body else ""


def diagnostics_section(run: Path) -> str:
    if not any((run / name).is_file() for name in (DIAGNOSE_RECORDS, DIAGNOSTICS)):
        return ""
    _, records = load_diagnostics(run)
    if (run / VERDICTS).is_file():
        verdicts = read_json(run / VERDICTS)
    else:
        meta = next((r for r in records if r.get("kind") == "meta"), {})
        init = init_record(read_metrics(run), meta["vocab_size"]) if "vocab_size" in meta else None
        verdicts = [v.to_dict() for v in check(records + ([init] if init else []))]
    body = verdicts_table(verdicts)
    for draw, caption in ((plots.plot_activations, "activations"), (plots.plot_gradients, "gradients"),
                          (plots.plot_weight_gradients, "weight gradients"),
                          (plots.plot_update_ratio, "update:data ratio"),
                          (plots.plot_saturation_map, "saturation map"),
                          *((draw, name.replace("_", " ")) for name, draw in plots.SEQUENCE_FIGURES.items())):
        try:
            body += figure_html(draw(records), caption)
        except ValueError:  # the records hold nothing this figure draws
            continue
    return section("Diagnostics", body, "diagnostics")


def verdicts_table(verdicts: list[dict]) -> str:
    if not verdicts:
        return ""
    rows = [[v["status"].upper(), v["rule"], v.get("layer") or "-", v.get("value"), v.get("threshold"),
             v.get("cause") or "", v.get("fix") or ""] for v in verdicts]
    classes = [[v["status"] if v["status"] in ("pass", "warn", "fail") else ""] + [""] * 6 for v in verdicts]
    return table(["status", "rule", "layer", "value", "threshold", "likely cause", "fix"],
                 [[c if c is not None else "-" for c in r] for r in rows], classes)


def samples_section(run: Path) -> str:
    if not (run / SAMPLES).is_file():
        return ""
    samples = read_json(run / SAMPLES)
    if not samples:
        return ""
    new = sum(s.get("novelty") == "new" for s in samples)
    rows = [[s.get("text", ""), s.get("novelty", "")] for s in samples]
    classes = [["", "new" if s.get("novelty") == "new" else ""] for s in samples]
    body = (f"<p>{new} of {len(samples)} samples are new (in no split); the others appear in the split "
            f"named.</p>" + table(["sample", "novelty"], rows, classes))
    return section("Samples", body, "samples")


def fold_section(run: Path) -> str:
    folds = [r for r in read_metrics(run) if r.get("event") == "fold"]
    if not folds:
        return ""
    fold = folds[-1]
    origin = read_json(run / CONFIG).get("folded_from") if (run / CONFIG).is_file() else None
    rows = [[k, fold[k]] for k in FOLD_KEYS if k in fold]
    body = (f"<p>BatchNorm folded into the preceding Linear layers"
            f"{' of ' + esc(origin) if origin else ''}; verified on the dev set.</p>" + table(["", ""], rows))
    return section("BatchNorm folding", body, "fold")


def experiment_results(run: Path) -> list[tuple[Path, dict]]:
    found = []
    for path in sorted(run.glob("*.json")):
        if path.name in (CONFIG, VOCAB, SPLITS_FILE, SAMPLES, VERDICTS):
            continue
        doc = read_json(path)
        if isinstance(doc, dict) and "experiment" in doc and isinstance(doc.get("rows"), list):
            found.append((path, doc))
    return found


def experiments_section(run: Path) -> str:
    parts = []
    for path, doc in experiment_results(run):
        rows = doc["rows"]
        header = list(dict.fromkeys(k for row in rows for k in row))
        settings = ", ".join(f"{k} {v}" for k, v in (doc.get("settings") or {}).items())
        findings = "".join(f"<li>{esc(f)}</li>" for f in doc.get("findings") or [])
        figures = "".join(png_file_html(p) for p in sorted(run.glob(f"{path.stem}-*.png")))
        parts.append(f"<h3>{esc(doc.get('title') or doc['experiment'])}</h3><p>settings: {esc(settings)}</p>"
                     + table(header, [[row.get(k, "") for k in header] for row in rows])
                     + (f"<ul>{findings}</ul>" if findings else "") + figures)
    return section("Experiments", "".join(parts), "experiments") if parts else ""


def batchnorm_widget_section(run: Path | None = None) -> str:
    """The lecture's BatchNorm explainer (the same on every report)."""
    return section("BatchNorm, interactively", asset("batchnorm_widget.html"), "batchnorm")


SECTIONS = (losses_section, samples_section, diagnostics_section, fold_section, experiments_section,
            batchnorm_widget_section, config_section)  # results first, the settings that made them last
