"""What every experiment shares: training one variant, and writing the table and figures.

An experiment is a controlled comparison: every variant trains through ``charlab.api.train`` on the
same data, with the same seed (so the same split and the same batches) and the same number of steps;
one setting differs. Its result is an ``ExperimentResult``: a table (rows of plain values), findings
computed from the measurements, extra data for the JSON, and figures. ``write_outputs`` writes
``NAME.md``, ``NAME.json`` and each figure as ``NAME-FIGURE.png`` and ``.svg`` into the output folder.
"""

from __future__ import annotations

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
from charlab.report.table import markdown_table  # noqa: E402
from charlab.rundir import atomic_write_bytes, atomic_write_json  # noqa: E402

FIGURE_FORMATS = ("png", "svg")
FIGURE_DPI = 120  # crisp on a screen, small files


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

    def to_json(self) -> dict:
        """Plain JSON values: NaN and infinity (a diverged variant) become null, tuple keys strings."""
        return json_safe({"experiment": self.name, "title": self.title, "settings": self.settings,
                          "rows": self.rows, "findings": self.findings, "data": self.data, "files": self.written})


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
    """One variant: ``preset`` with ``overrides``, the experiment's data, steps and seed; nothing saved."""
    observers = ([recorder] if recorder is not None else []) + list(observers)
    return api.train(data=data, preset=preset, steps=steps, seed=seed, eval_interval=max(steps, 1), n_samples=0,
                     observers=observers, progress=progress, **overrides)


def data_name(data: str | Path | None) -> str:
    return "embedded names" if data is None else str(data)


def recorded_steps(recorder: Recorder) -> dict[int, dict]:
    return {r["step"]: r for r in recorder.steps()}


def result_table(result: ExperimentResult) -> str:
    """The result's rows as a Markdown table: one column per ``Column``, with its header and number format."""
    columns = result.columns
    return markdown_table([c.header for c in columns], [[row.get(c.key) for c in columns] for row in result.rows],
                          [c.fmt for c in columns])


def markdown(result: ExperimentResult) -> str:
    settings = ", ".join(f"{k} {v}" for k, v in result.settings.items())
    parts = [f"# {result.title}", "", f"Settings: {settings}.", "", result_table(result), "",
             "## Findings", "", *[f"- {line}" for line in result.findings]]
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
