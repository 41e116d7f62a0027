"""Reading a word list: one item per line, UTF-8; the embedded names list is the default."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from charlab.errors import CharlabError

DEFAULT_DATA = "names.txt"  # packaged with charlab: 32,033 US baby names (MIT, from makemore)


def default_data_path() -> Path:
    """The embedded names list shipped inside the package."""
    return Path(str(resources.files("charlab") / "data" / DEFAULT_DATA))


def read_items(path: str | Path | None) -> list[str]:
    """Read one item per line from a UTF-8 file; strip whitespace and CRLF, skip blank lines."""
    path = default_data_path() if path is None else Path(path)
    if not path.exists():
        raise CharlabError(f"data file {path} does not exist; pass an existing file with --data")
    if path.is_dir():
        raise CharlabError(f"data path {path} is a directory; pass a text file with --data")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise CharlabError(
            f"data file {path} is not valid UTF-8 (byte {err.start}); re-encode it as UTF-8"
        ) from None
    except OSError as err:
        raise CharlabError(f"data file {path} cannot be read ({err.strerror}); check its permissions") from None
    text = text.removeprefix("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # not splitlines(): U+2028 is a char
    items = [line.strip() for line in lines]
    items = [item for item in items if item]
    if not items:
        raise CharlabError(f"data file {path} has no items (it is empty or only blank lines)")
    return items
