"""Showing data safely: an item is text, whatever characters it holds.

An item such as ``<img src=x onerror=alert(1)>`` must appear as those characters in an HTML report,
not run; ``a|b`` must not split a Markdown table cell; ``\\x1b[2J`` (clear screen) or a right-to-left
override must not act on a terminal. Each output escapes data with the function for its medium.
"""

from __future__ import annotations

import html
import re
import unicodedata

MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")  # Markdown punctuation (< > & go to HTML)
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
UNSAFE_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})  # control characters, line and paragraph separators


def html_text(text: str) -> str:
    """Text for HTML element content or a quoted attribute: ``& < > " '`` escaped."""
    return html.escape(text, quote=True)


def markdown_cell(text: str) -> str:
    """Text for a Markdown table cell: control characters made visible (so the row stays one line),
    Markdown punctuation backslash-escaped (``|`` included, so a cell never splits), then HTML escaped."""
    return html_text(MARKDOWN_SPECIAL.sub(r"\\\1", _controls_visible(text)))


def _visible(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _controls_visible(text: str) -> str:
    return "".join(_visible(ch) if ch in BIDI_CONTROLS or unicodedata.category(ch) in UNSAFE_CATEGORIES
                   else ch for ch in text)


def terminal(text: str) -> str:
    """Text safe to print: control characters (escape sequences, newlines, tabs...), line and
    paragraph separators and bidirectional overrides shown as ``\\xNN`` / ``\\uNNNN``; a backslash
    is doubled first so the escapes stay unambiguous. Printable characters are unchanged."""
    return _controls_visible(text.replace("\\", "\\\\"))
