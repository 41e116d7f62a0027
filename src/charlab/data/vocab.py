"""The vocabulary: the sorted characters of the data plus a boundary token that is not a character."""

from __future__ import annotations

from dataclasses import dataclass

from charlab.errors import CharlabError

BOUNDARY_ID = 0  # the start/end token; it is an id, not a character, so it never collides with data
BOUNDARY_DISPLAY = "."  # how the boundary is shown when a vocabulary is printed


@dataclass(frozen=True)
class Vocab:
    """Sorted characters of the data at ids 1..V-1; id 0 is the reserved boundary token."""

    chars: tuple[str, ...]

    @classmethod
    def from_items(cls, items: list[str]) -> "Vocab":
        return cls(tuple(sorted(set("".join(items)))))

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    @property
    def stoi(self) -> dict[str, int]:
        return {ch: i + 1 for i, ch in enumerate(self.chars)}

    def encode(self, item: str) -> list[int]:
        stoi = self.stoi
        unknown = sorted({ch for ch in item if ch not in stoi})
        if unknown:
            raise CharlabError(
                f"{item!r} has characters outside the vocabulary: {''.join(unknown)!r}; "
                "use items written with the training data's characters"
            )
        return [stoi[ch] for ch in item]

    def decode(self, ids: list[int]) -> str:
        """Characters for ids, stopping at the first boundary."""
        out = []
        for i in ids:
            if i == BOUNDARY_ID:
                break
            out.append(self.chars[i - 1])
        return "".join(out)

    def to_json(self) -> dict:
        return {"boundary_id": BOUNDARY_ID, "boundary_display": BOUNDARY_DISPLAY, "chars": list(self.chars)}

    @classmethod
    def from_json(cls, doc: dict) -> "Vocab":
        chars = doc.get("chars") if isinstance(doc, dict) else None
        if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise CharlabError("vocab.json is malformed: expected {'chars': [single characters]}")
        if list(chars) != sorted(set(chars)):
            raise CharlabError("vocab.json is malformed: characters must be sorted and unique")
        return cls(tuple(chars))
