"""data/: reading word lists, the vocabulary, the split and the examples, against direct oracles."""

from __future__ import annotations

import random

import pytest
import torch

from charlab.data import BOUNDARY_ID, IGNORE_INDEX, SPLITS, Vocab, build_examples, build_sequences, build_windows, read_items
from charlab.data.splits import split_items
from charlab.errors import CharlabError

LECTURE_WINDOW_COUNTS = {"train": 182_625, "dev": 22_655, "test": 22_866}  # makemore part 3, seed 42
MILLION = 1_000_000
UNICODE_ALPHABET = "abcxyz.-'ëé日本😀\u2028"  # ASCII, '.', accents, CJK, an emoji, a line separator


def lecture_build_dataset(items: list[str], vocab: Vocab, block_size: int):
    """The lecture's ``build_dataset``, a Python loop per character, with id 0 as the end token."""
    xs, ys = [], []
    stoi = vocab.stoi
    for item in items:
        context = [BOUNDARY_ID] * block_size
        for ix in [stoi[ch] for ch in item] + [BOUNDARY_ID]:
            xs.append(context)
            ys.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(xs, dtype=torch.long).view(-1, block_size), torch.tensor(ys, dtype=torch.long)


def random_items(rng: random.Random, n: int, max_len: int = 12) -> list[str]:
    return ["".join(rng.choice(UNICODE_ALPHABET) for _ in range(rng.randint(1, max_len))) for _ in range(n)]


# --- reading -----------------------------------------------------------------------------------


def test_read_strips_crlf_whitespace_blank_lines_and_bom(write_words):
    raw = "\ufeff  emma \r\n\r\n\tolivia\t\r\n   \r\nava\n\n".encode("utf-8")
    assert read_items(write_words(raw)) == ["emma", "olivia", "ava"]


def test_read_keeps_any_unicode_and_inner_spaces(write_words):
    items = ["Zoë", "日本", "😀x😀", "anne marie", "o'neil", "a.b"]
    assert read_items(write_words(items)) == items


def test_read_one_item_per_line_only_newlines_split(write_words):
    """Unicode line separators inside an item are characters of the item, not line breaks."""
    items = ["a\u2028b", "c\x85d", "e\x0cf"]
    assert read_items(write_words(items)) == items


def test_read_old_mac_line_endings(write_words):
    assert read_items(write_words(b"emma\rava\r")) == ["emma", "ava"]


def test_read_default_is_embedded_names(names):
    assert len(names) == 32_033
    assert names[:3] == ["emma", "olivia", "ava"]


@pytest.mark.parametrize("content", [b"", b"\n\n  \r\n\t\n", "\ufeff\n".encode("utf-8")],
                         ids=["empty", "blank-lines", "bom-only"])
def test_read_no_items_is_an_error(write_words, content):
    with pytest.raises(CharlabError, match="no items"):
        read_items(write_words(content))


def test_read_invalid_utf8_is_an_error(write_words):
    with pytest.raises(CharlabError, match="not valid UTF-8"):
        read_items(write_words(b"emma\n\xff\xfeava\n"))


def test_read_missing_file_and_directory(tmp_path):
    with pytest.raises(CharlabError, match="does not exist"):
        read_items(tmp_path / "nope.txt")
    with pytest.raises(CharlabError, match="directory"):
        read_items(tmp_path)


# --- vocabulary --------------------------------------------------------------------------------


def test_vocab_sorted_with_boundary_at_zero():
    vocab = Vocab.from_items(["cab", "Zoë", "a.b"])
    assert vocab.chars == tuple(sorted(set("cabZoëa.b")))
    assert vocab.size == len(vocab.chars) + 1
    assert sorted(vocab.stoi.values()) == list(range(1, vocab.size))
    assert BOUNDARY_ID not in vocab.stoi.values()


def test_literal_dot_is_an_ordinary_character():
    vocab = Vocab.from_items(["a.b", "ab"])
    assert vocab.stoi["."] != BOUNDARY_ID
    ids = vocab.encode("a.b")
    assert BOUNDARY_ID not in ids
    assert vocab.decode(ids) == "a.b"
    examples = build_windows(["a.b"], vocab, block_size=2)
    assert examples.y.tolist() == [vocab.stoi["a"], vocab.stoi["."], vocab.stoi["b"], BOUNDARY_ID]


def test_vocab_decode_stops_at_boundary_and_json_round_trips():
    vocab = Vocab.from_items(["日本", "emoji😀"])
    ids = vocab.encode("本😀")
    assert vocab.decode(ids + [BOUNDARY_ID] + ids) == "本😀"
    assert Vocab.from_json(vocab.to_json()) == vocab


@pytest.mark.parametrize("doc", [{}, {"chars": ["b", "a"]}, {"chars": ["ab"]}, {"chars": ["a", "a"]}, []])
def test_vocab_from_json_rejects_malformed(doc):
    with pytest.raises(CharlabError, match="malformed"):
        Vocab.from_json(doc)


def test_encode_unknown_character_is_an_error():
    with pytest.raises(CharlabError, match="outside the vocabulary"):
        Vocab.from_items(["abc"]).encode("abz")
    with pytest.raises(CharlabError, match="outside the run's vocabulary"):
        build_windows(["abz"], Vocab.from_items(["abc"]), 3)


# --- split -------------------------------------------------------------------------------------


def test_split_80_10_10_partition_and_deterministic():
    items = [f"w{i}" for i in range(1000)]
    split = split_items(items, seed=7)
    assert [len(split[k]) for k in SPLITS] == [800, 100, 100]
    assert sorted(sum((split[k] for k in SPLITS), [])) == sorted(items)
    assert split_items(items, seed=7) == split
    assert split_items(items, seed=8) != split


def test_split_seed_42_is_the_lectures(names):
    """The lecture: ``random.seed(42); random.shuffle(words)``, then cut at 80% and 90%."""
    words = list(names)
    random.seed(42)
    random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    split = split_items(names, seed=42)
    assert split == {"train": words[:n1], "dev": words[n1:n2], "test": words[n2:]}
    vocab = Vocab.from_items(names)
    assert vocab.size == 27
    counts = {k: len(build_windows(split[k], vocab, 3)) for k in SPLITS}
    assert counts == LECTURE_WINDOW_COUNTS


def test_split_needs_two_items():
    with pytest.raises(CharlabError, match="at least 2"):
        split_items(["solo"], seed=42)
    assert len(split_items(["a", "b"], seed=42)["train"]) == 1


# --- window examples ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed,block_size", [(0, 1), (1, 3), (2, 8), (3, 16)])
def test_windows_match_lecture_loop_on_random_data(seed, block_size):
    items = random_items(random.Random(seed), n=300)
    vocab = Vocab.from_items(items)
    examples = build_windows(items, vocab, block_size)
    x_ref, y_ref = lecture_build_dataset(items, vocab, block_size)
    assert torch.equal(examples.x, x_ref)
    assert torch.equal(examples.y, y_ref)
    owners = [i for i, item in enumerate(items) for _ in range(len(item) + 1)]
    assert examples.owner.tolist() == owners
    assert examples.x.dtype == examples.y.dtype == torch.long


def test_build_examples_dispatches_by_kind():
    items = ["ab", "c"]
    vocab = Vocab.from_items(items)
    assert torch.equal(build_examples(items, vocab, "window", 2).x, build_windows(items, vocab, 2).x)
    assert torch.equal(build_examples(items, vocab, "sequence", 4).y, build_sequences(items, vocab, 4).y)


@pytest.mark.slow
def test_million_items_build(names):
    """A 1,000,000-item list builds (vectorised); a few rows are checked against the loop oracle."""
    items = [names[i % len(names)] + "日😀"[i % 2] for i in range(MILLION)]
    vocab = Vocab.from_items(items)
    examples = build_windows(items, vocab, 3)
    assert len(examples) == sum(len(item) + 1 for item in items)
    for index in (0, 1, MILLION // 2, MILLION - 1):
        x_ref, y_ref = lecture_build_dataset([items[index]], vocab, 3)
        rows = (examples.owner == index).nonzero().squeeze(1)  # (len+1,)
        assert torch.equal(examples.x[rows], x_ref)
        assert torch.equal(examples.y[rows], y_ref)


# --- sequence examples -------------------------------------------------------------------------


def test_sequences_shape_and_padding():
    items = ["ab", "日本語", "x"]
    vocab = Vocab.from_items(items)
    block_size = 6
    ex = build_sequences(items, vocab, block_size)
    assert ex.x.shape == ex.y.shape == (3, block_size)
    assert ex.owner.tolist() == [0, 1, 2]
    for row, item in enumerate(items):
        ids = vocab.encode(item)
        n = len(ids)
        assert ex.x[row].tolist() == [BOUNDARY_ID] + ids + [BOUNDARY_ID] * (block_size - n - 1)
        assert ex.y[row].tolist() == ids + [BOUNDARY_ID] + [IGNORE_INDEX] * (block_size - n - 1)


def test_sequences_exact_fit_and_too_long():
    vocab = Vocab.from_items(["abc"])
    ex = build_sequences(["abc"], vocab, 4)
    assert ex.y[0].tolist() == vocab.encode("abc") + [BOUNDARY_ID]
    with pytest.raises(CharlabError, match="block-size to at least 4"):
        build_sequences(["abc"], vocab, 3)


def test_rows_cut_sequences_after_the_last_predicted_position():
    items = ["ab", "abcde", "a", "abc"]
    vocab = Vocab.from_items(items)
    ex = build_sequences(items, vocab, 8)
    for ix, width in (([0, 2], 3), ([0, 1, 2], 6), ([3], 4), ([2], 2)):
        x, y = ex.rows(torch.tensor(ix))
        assert x.shape == y.shape == (len(ix), width)
        assert x.tolist() == ex.x[ix, :width].tolist()
        assert (ex.y[ix, width:] == IGNORE_INDEX).all()  # nothing predicted was cut off
    windows = build_windows(items, vocab, 3)
    x, y = windows.rows(torch.tensor([0, 4]))
    assert torch.equal(x, windows.x[[0, 4]]) and torch.equal(y, windows.y[[0, 4]])  # windows are never cut
