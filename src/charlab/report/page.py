"""``report.html``: one self-contained page for a run, readable offline in any browser.

Everything is inside the file: figures as PNG data URIs, the stylesheet and the BatchNorm explainer's
script inline, no CDN. A Content-Security-Policy forbids every network request and admits only this
page's own script and stylesheet (by their SHA-256), so even text that slipped through unescaped could
not run. Sections (``sections.py``) appear when the run has their files and are omitted
otherwise; a folder of experiment results without a run makes a report too.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from charlab.errors import CharlabError
from charlab.report.html import asset, esc
from charlab.report.sections import SECTIONS, batchnorm_widget_section
from charlab.rundir import CONFIG, METRICS, REPORT, SAMPLES, WEIGHTS, atomic_write_bytes, checkpoint_weights


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def page(title: str, body: str) -> str:
    style, script = asset("report.css"), asset("batchnorm_widget.js")
    policy = (f"default-src 'none'; img-src data:; style-src {csp_hash(style)}; script-src {csp_hash(script)}; "
              "base-uri 'none'; form-action 'none'")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{style}</style></head>\n<body>{body}"
            f"<script>{script}</script></body></html>\n")


def shown_path(run: Path) -> Path:
    """The run's path relative to the working directory when it lies inside it, else absolute."""
    path = run.resolve()
    try:
        return path.relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def unfinished_weights(run: str | Path) -> dict | None:
    """``{"source", "step"}`` of the checkpoint whose weights stand in for a run stopped before its
    final weights (``rundir.checkpoint_weights``); None for a finished run or a folder without one."""
    run = Path(run)
    if not (run / CONFIG).is_file() or (run / WEIGHTS).is_file():
        return None
    found = checkpoint_weights(run)
    return found[1] if found else None


def build_report(run: str | Path) -> str:
    """The report of ``run`` as one HTML string."""
    run = Path(run)
    if not run.is_dir():
        raise CharlabError(f"run directory {run} does not exist; pass a directory made by `charlab train`")
    sections = [s for s in (build(run) for build in SECTIONS) if s]
    if sections == [batchnorm_widget_section(run)]:
        raise CharlabError(f"{run} holds no run files ({CONFIG}, {METRICS}, {SAMPLES}) or experiment "
                           "results; pass a directory made by `charlab train` or `charlab experiment`")
    header = (f"<h1>charlab report: {esc(run.resolve().name)}</h1>"
              f'<p class="sub">{esc(shown_path(run))}</p>')
    weights = unfinished_weights(run)
    if weights is not None:
        header += (f'<p class="sub">training did not finish: the weights are those of {esc(weights["source"])} '
                   f'(step {weights["step"]})</p>')
    return page(f"charlab report: {run.resolve().name}", header + "".join(sections))


def write_report(run: str | Path, out: str | Path | None = None) -> Path:
    """Write ``RUN/report.html`` (or ``out``) atomically; returns its path."""
    text = build_report(run)
    path = Path(out) if out is not None else Path(run) / REPORT
    if path.parent and not path.parent.is_dir():
        raise CharlabError(f"--out {path}: folder {path.parent} does not exist; create it or pick another path")
    atomic_write_bytes(path, text.encode("utf-8"))
    return path
