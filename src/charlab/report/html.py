"""Building blocks of the HTML report: escaped text and tables (cells as ``report/table.py`` writes them),
figures as PNG data URIs, assets.

Every value that comes from a run goes through ``esc`` (``html.escape``), so an item such as
``<img src=x onerror=alert(1)>`` shows as text.
"""

from __future__ import annotations

import base64
import html
import io
import json
from importlib import resources
from pathlib import Path

from matplotlib.figure import Figure

from charlab.errors import CharlabError
from charlab.report.table import cell, is_number

FIGURE_DPI = 100  # sharp at the page's 1000-pixel width, ~50 kB per figure


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def asset(name: str) -> str:
    return (resources.files("charlab") / "report" / "assets" / name).read_text(encoding="utf-8")


def figure_html(fig: Figure, caption: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def png_file_html(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(path.stem)}">'
            f"<figcaption>{esc(path.name)}</figcaption></figure>")


def table(header: list[str], rows: list[list], classes: list[list[str]] | None = None) -> str:
    """An escaped HTML table, each value's text by ``table.cell``; numbers right-aligned; ``classes``
    optionally styles cells."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            cls = ["num"] if is_number(value) else []
            cls += [classes[r][c]] if classes and classes[r][c] else []
            attr = f' class="{" ".join(cls)}"' if cls else ""
            cells.append(f"<td{attr}>{esc(cell(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise CharlabError(f"{path} is not valid JSON; the run directory is damaged: re-create it") from None
