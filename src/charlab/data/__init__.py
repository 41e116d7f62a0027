"""data: words file -> items -> vocabulary -> train/dev/test -> examples -> batches."""

from charlab.data.reader import DEFAULT_DATA, default_data_path, read_items
from charlab.data.vocab import BOUNDARY_DISPLAY, BOUNDARY_ID, Vocab
from charlab.data.splits import SPLITS, make_splits, split_items
from charlab.data.examples import IGNORE_INDEX, Examples, build_examples, build_sequences, build_windows, encode_items

__all__ = ["DEFAULT_DATA", "default_data_path", "read_items", "BOUNDARY_DISPLAY", "BOUNDARY_ID", "Vocab",
           "SPLITS", "make_splits", "split_items", "IGNORE_INDEX", "Examples", "build_examples",
           "build_sequences", "build_windows", "encode_items"]
