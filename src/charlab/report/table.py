"""Tables: one rule for turning a value into a cell's text, and a header with rows laid out as aligned
plain text (the terminal) or as a Markdown table. The HTML report's tables (``report/html.py``) use the
same ``cell``, so a number reads the same in the terminal, a Markdown file and the report.

This module sits at the bottom of ``report`` (it imports nothing from charlab), so every caller above it
can use it: ``report``, ``api``, ``experiments`` and ``cli``.
"""

from __future__ import annotations

import math
from typing import Sequence

MISSING = "-"  # a value that is absent (None) or not a number (NaN)
SIGNIFICANT = "{:.4g}"  # a float with no format of its own: 4 significant digits
COLUMN_GAP = "  "


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def cell(value, spec: str | None = None) -> str:
    """A value as a cell's text: None and NaN as ``-``; a list or tuple its items, each by this rule, joined
    by ``, ``; a number with ``spec`` (e.g. ``"{:.4f}"``) when given, a float otherwise to 4 significant
    digits; anything else (text, a bool, an int without ``spec``) as ``str``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v, spec) for v in value)
    if spec is not None and is_number(value):
        return spec.format(value)
    if isinstance(value, float):
        return SIGNIFICANT.format(value)
    return str(value)


def cells(rows: Sequence[Sequence], specs: Sequence[str | None] | None = None) -> list[list[str]]:
    """Every value of ``rows`` as text; ``specs`` optionally gives each column's number format."""
    return [[cell(v, specs[i] if specs else None) for i, v in enumerate(row)] for row in rows]


def text_table(header: Sequence[str], rows: Sequence[Sequence], specs: Sequence[str | None] | None = None) -> str:
    """Columns padded to their widest cell, two spaces apart, no trailing spaces: for the terminal."""
    lines = [list(header)] + cells(rows, specs)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(COLUMN_GAP.join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], specs: Sequence[str | None] | None = None) -> str:
    """A Markdown (GitHub) table: a header row, a ``---`` rule, one line a row."""
    lines = [list(header), ["---"] * len(header)] + cells(rows, specs)
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
