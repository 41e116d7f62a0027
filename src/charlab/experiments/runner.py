"""What every experiment shares: training one variant, and writing the table and figures.

An experiment is a controlled comparison: every variant trains through ``charlab.api.train`` on the
same data, with the same seed (so the same split and the same batches) and the same number of steps;
one setting differs. Its result is an ``ExperimentResult``: a table (rows of plain values), findings
computed from the measurements, extra data for the JSON, and figures. ``write_outputs`` writes
``NAME.md``, ``NAME.json`` and each figure as ``NAME-FIGURE.png`` and ``.svg`` into the output folder.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402

from charlab import api  # noqa: E402
from charlab.diagnostics.recorder import Recorder  # noqa: E402
from charlab.diagnostics.sampling import SampleSchedule  # noqa: E402
from charlab.errors import CharlabError  # noqa: E402
from charlab.experiments.seeds import current_split_seed  # noqa: E402
from charlab.report.table import MISSING as MISSING_CELL, cell, markdown_table  # noqa: E402
from charlab.rundir import atomic_write_bytes, atomic_write_json  # noqa: E402

FIGURE_FORMATS = ("png", "svg")
FIGURE_DPI = 120  # crisp on a screen, small files
DIFF_FORMAT = "{:+.4f}"  # a difference of losses: signed, to the 4 decimals every loss is shown with
DIFF_STD_FORMAT = "{:.4f}"  # its std over seeds, to the same decimals


@dataclass
class Column:
    key: str
    header: str
    fmt: str | None = None  # a number's format in the Markdown table (default: report.table.cell's); JSON keeps it raw


@dataclass
class ExperimentResult:
    name: str
    title: str
    settings: dict
    columns: list[Column]
    rows: list[dict]
    findings: list[str]
    data: dict = field(default_factory=dict)
    figures: dict[str, Callable[[], plt.Figure]] = field(default_factory=dict)  # name -> drawing function
    written: list[str] = field(default_factory=list)
    comparisons: list[dict] = field(default_factory=list)  # over seeds: adjacent variants, paired by seed

    def to_json(self) -> dict:
        """Plain JSON values: NaN and infinity (a diverged variant) become null, tuple keys strings.
        ``columns`` makes the rows readable without the code (``aggregate`` reads it back)."""
        doc = {"experiment": self.name, "title": self.title, "settings": self.settings,
               "columns": [dataclasses.asdict(c) for c in self.columns], "rows": self.rows,
               "findings": self.findings, "data": self.data, "files": self.written}
        if self.comparisons:
            doc["comparisons"] = self.comparisons
        return json_safe(doc)


def json_safe(node):
    if isinstance(node, dict):
        return {str(k): json_safe(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [json_safe(v) for v in node]
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node


def schedule_at_ends(steps: int) -> SampleSchedule:
    """Record step 0 (the initialisation) and the last step only."""
    return SampleSchedule(every=max(steps, 1), dense=0)


def train_variant(preset: str, steps: int, seed: int, recorder: Recorder | None = None, observers=(),
                  progress: bool = False, data: str | Path | None = None, **overrides) -> api.TrainedRun:
    """One variant: ``preset`` with ``overrides``, the experiment's data, steps and seed; nothing saved.
    Inside ``seeds.fixed_split(k)`` the data is split with seed ``k`` whatever ``seed`` is."""
    observers = ([recorder] if recorder is not None else []) + list(observers)
    if current_split_seed() is not None:
        overrides.setdefault("split_seed", current_split_seed())
    return api.train(data=data, preset=preset, steps=steps, seed=seed, eval_interval=max(steps, 1), n_samples=0,
                     observers=observers, progress=progress, **overrides)


def data_name(data: str | Path | None) -> str:
    return "embedded names" if data is None else str(data)


def recorded_steps(recorder: Recorder) -> dict[int, dict]:
    return {r["step"]: r for r in recorder.steps()}


def summary_cell(value: dict, fmt: str | None) -> str:
    """A cell over seeds: ``mean ± std [ci_low, ci_high]`` (a list column: ``mean ± std`` per item)."""
    if isinstance(value["mean"], list):
        return ", ".join(cell(m, fmt) if s is None else f"{cell(m, fmt)} ± {cell(s, fmt)}"
                         for m, s in zip(value["mean"], value["std"]))
    if value["mean"] is None:
        return MISSING_CELL
    if value["std"] is None:
        return cell(value["mean"], fmt)
    return (f"{cell(value['mean'], fmt)} ± {cell(value['std'], fmt)} "
            f"[{cell(value['ci_low'], fmt)}, {cell(value['ci_high'], fmt)}]")


def table_cell(value, fmt: str | None):
    """A row's value as the table shows it: a summary over seeds as text, anything else as it is."""
    return summary_cell(value, fmt) if isinstance(value, dict) and "mean" in value else value


def result_table(result: ExperimentResult) -> str:
    """The result's rows as a Markdown table: one column per ``Column``, with its header and number format."""
    columns = result.columns
    rows = [[table_cell(row.get(c.key), c.fmt) for c in columns] for row in result.rows]
    return markdown_table([c.header for c in columns], rows, [c.fmt for c in columns])


def comparisons_table(result: ExperimentResult) -> str:
    """Adjacent variants paired by seed: the mean difference B − A, its std and interval, the verdict."""
    rows = [[c["b"], c["a"], c["diff_mean"], c["diff_std"], None if c["ci_low"] is None else
             f"{DIFF_FORMAT.format(c['ci_low'])} to {DIFF_FORMAT.format(c['ci_high'])}", c["n"], c["verdict"]]
            for c in result.comparisons]
    metric = result.comparisons[0]["metric"]
    header = ["B", "A", f"{metric} B - A (mean)", "std", "95 % CI", "seeds", "verdict"]
    return markdown_table(header, rows, [None, None, DIFF_FORMAT, DIFF_STD_FORMAT, None, None, None])


def terminal_text(result: ExperimentResult) -> str:
    """What a command prints: the title and settings, the table, the paired comparisons, the findings."""
    parts = [f"{result.title} ({', '.join(f'{k} {v}' for k, v in result.settings.items())})", "",
             result_table(result), ""]
    if result.comparisons:
        parts += [comparisons_table(result), ""]
    parts += [f"- {line}" for line in result.findings]
    return "\n".join(parts + ["", f"written: {', '.join(result.written)}"])


def markdown(result: ExperimentResult) -> str:
    settings = ", ".join(f"{k} {v}" for k, v in result.settings.items())
    parts = [f"# {result.title}", "", f"Settings: {settings}.", "", result_table(result), ""]
    if result.comparisons:
        parts += ["## Paired by seed", "", comparisons_table(result), ""]
    parts += ["## Findings", "", *[f"- {line}" for line in result.findings]]
    figures = [f"![{name}]({result.name}-{name}.png)" for name in result.figures]
    if figures:
        parts += ["", "## Figures", "", *figures]
    return "\n".join(parts) + "\n"


def output_dir(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CharlabError(f"--out {out} is a file; pass a directory path")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_figure(fig: plt.Figure, stem: Path) -> list[Path]:
    paths = []
    for ext in FIGURE_FORMATS:
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=FIGURE_DPI, bbox_inches="tight")
        path = stem.with_suffix(f".{ext}")
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    plt.close(fig)
    return paths


def write_outputs(result: ExperimentResult, out: str | Path) -> list[Path]:
    """``NAME.md``, ``NAME.json`` and the figures, each written atomically; returns the paths."""
    out = output_dir(out)
    paths = []
    for name, draw in result.figures.items():
        paths += write_figure(draw(), out / f"{result.name}-{name}")
    paths += [out / f"{result.name}.md", out / f"{result.name}.json"]
    result.written = [str(p) for p in paths]
    atomic_write_bytes(paths[-2], markdown(result).encode("utf-8"))
    atomic_write_json(paths[-1], result.to_json())
    return paths
