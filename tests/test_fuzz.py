"""Property-based tests (hypothesis) of the data reader and the vocabulary over arbitrary Unicode:
never a crash (a CharlabError at most), lossless encode/decode, the boundary never inside an item."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charlab.data import BOUNDARY_ID, Vocab, build_windows, encode_items, read_items
from charlab.errors import CharlabError
from charlab.report.escape import html_text, markdown_cell, terminal

EXAMPLES = 150  # per property: enough to hit odd code points, quick on one core
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LINE_BREAKS = "\n\r"  # the reader splits on LF, CRLF and CR only (U+2028 and friends are characters)

any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)  # every code point but surrogates
any_lines = st.lists(any_text, max_size=12)
items_of = st.lists(any_text.map(str.strip).filter(bool).filter(lambda s: not any(c in LINE_BREAKS for c in s)),
                    min_size=1, max_size=12)


def read_bytes(data: bytes) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "words.txt"
        path.write_bytes(data)
        return read_items(path)


@FUZZ
@given(any_lines, st.sampled_from(["\n", "\r\n", "\r"]), st.booleans())
def test_reader_never_crashes_and_items_are_clean(lines, newline, bom):
    text = ("\ufeff" if bom else "") + newline.join(lines)
    visible = "".join(text.removeprefix("\ufeff").split())  # every non-whitespace character, in order
    try:
        items = read_bytes(text.encode("utf-8"))
    except CharlabError:
        assert visible == ""
        return
    for item in items:
        assert item and item == item.strip()
        assert not any(c in LINE_BREAKS for c in item)
    assert "".join("".join(items).split()) == visible  # nothing lost, nothing added


@FUZZ
@given(st.binary(max_size=200))
def test_reader_on_arbitrary_bytes_returns_items_or_a_charlab_error(data):
    try:
        items = read_bytes(data)
    except CharlabError:
        return
    assert all(items)


@FUZZ
@given(items_of)
def test_vocab_round_trip_and_boundary_never_inside_an_item(items):
    vocab = Vocab.from_items(items)
    assert vocab.size == len(set("".join(items))) + 1
    for item in items:
        ids = vocab.encode(item)
        assert BOUNDARY_ID not in ids and all(0 < i < vocab.size for i in ids)
        assert vocab.decode(ids) == item
        assert vocab.decode(ids + [BOUNDARY_ID] + ids) == item
    assert Vocab.from_json(json.loads(json.dumps(vocab.to_json()))) == vocab


@FUZZ
@given(items_of, st.integers(1, 5))
def test_encoded_data_has_the_boundary_only_between_items(items, block_size):
    vocab = Vocab.from_items(items)
    flat, lengths = encode_items(items, vocab)  # (M,), (n,)
    ends = torch.cumsum(lengths + 1, 0) - 1  # (n,)
    is_end = torch.zeros(flat.shape[0], dtype=torch.bool)
    is_end[ends] = True
    assert torch.equal(flat == BOUNDARY_ID, is_end)
    expected = [i for item in items for i in vocab.encode(item) + [BOUNDARY_ID]]
    assert flat.tolist() == expected
    windows = build_windows(items, vocab, block_size)
    assert windows.y.tolist() == expected


@FUZZ
@given(items_of, any_text)
def test_encoding_unknown_characters_is_a_charlab_error(items, other):
    vocab = Vocab.from_items(items)
    try:
        ids = vocab.encode(other)
    except CharlabError:
        assert set(other) - set(vocab.chars)
        return
    assert vocab.decode(ids) == other


@FUZZ
@given(st.recursive(st.none() | st.booleans() | st.integers() | any_text,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
                    max_leaves=12))
@pytest.mark.slow
def test_vocab_from_arbitrary_json_is_a_vocab_or_a_charlab_error(doc):
    try:
        vocab = Vocab.from_json(doc)
    except CharlabError:
        return
    assert all(len(c) == 1 for c in vocab.chars) and list(vocab.chars) == sorted(set(vocab.chars))


@FUZZ
@given(any_text)
def test_escaped_text_has_no_markup_or_control_characters(text):
    assert "<" not in html_text(text) and ">" not in html_text(text)
    cell = markdown_cell(text)
    assert "<" not in cell and "\n" not in cell and "|" not in cell.replace("\\|", "")
    shown = terminal(text)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in shown)
