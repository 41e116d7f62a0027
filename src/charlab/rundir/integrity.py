"""Checks on files before charlab trusts them: refuse pickles, and verify a digest of saved tensors.

charlab never unpickles anything (``torch.load``, ``pickle``): unpickling runs whatever code the file
names. A pickle put in place of a run file is recognised by its first bytes and refused with a message
saying so; anything else that is not what charlab wrote fails to parse as JSON or safetensors.
safetensors itself has no checksum, so charlab stores a SHA-256 of the tensors in the file's
metadata and checks it on load: flipped bytes in the data are caught, not silently loaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from charlab.errors import CharlabError

PICKLE_PROTOCOL_2_PLUS = b"\x80"  # the PROTO opcode that starts every pickle of protocol >= 2
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format: a zip archive holding a pickle
DIGEST_KEY = "sha256"  # safetensors metadata key of the tensors' digest
SAFETENSORS_LENGTH_BYTES = 8  # a safetensors file: its JSON header's length (u64, little-endian), then "{"
HEAD_BYTES = SAFETENSORS_LENGTH_BYTES + 1


def looks_like_safetensors(head: bytes) -> bool:
    """A header length below 2^40 then "{": no pickle starts so (0x00 is no pickle opcode)."""
    length = head[:SAFETENSORS_LENGTH_BYTES]
    return length[5:] == b"\0\0\0" and head[SAFETENSORS_LENGTH_BYTES:HEAD_BYTES] == b"{"


def looks_like_pickle(head: bytes) -> bool:
    """A pickle's PROTO opcode or torch.save's zip magic, unless it is a safetensors header whose length
    happens to start with byte 0x80 (one header length in 256 does)."""
    if looks_like_safetensors(head):
        return False
    return head.startswith(PICKLE_PROTOCOL_2_PLUS) or head.startswith(ZIP_MAGIC)


def refuse_pickle(path: Path, head: bytes) -> None:
    """Raise a clear error when ``head`` (a file's first bytes) is a pickle or a torch.save zip."""
    if looks_like_pickle(head):
        raise CharlabError(f"{path} is a Python pickle or torch.save file, not a charlab file; charlab never "
                           "unpickles (it can run code): re-create the run with `charlab train`")


def read_head(path: Path, n: int = HEAD_BYTES) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of the tensors, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode("utf-8"))
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_digest(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None) -> None:
    """Verify the stored digest when there is one (files written before digests have none)."""
    expected = (metadata or {}).get(DIGEST_KEY)
    if expected is not None and tensor_digest(tensors) != expected:
        raise CharlabError(f"{path} is corrupted: its tensors do not match the checksum stored with them; "
                           "re-create the run or resume from another checkpoint")
