"""Atomic writes: a temporary file in the same folder, fsync, rename. A crash or a kill at any moment
leaves either the old file or the new one, never half of one.

The temporary file is created with mode 0o666 less the umask, as ``open()`` would create the file
(``tempfile.mkstemp`` would make every run file 0600, readable by its owner alone)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import torch
from safetensors.torch import save as serialize


FILE_MODE = 0o666  # the mode open() asks for; the kernel takes the umask off (0o644 with umask 022)
TEMP_ATTEMPTS = 100  # random names tried before giving up (a clash is a 1-in-2^32 event)


def create_temp(path: Path) -> tuple[int, str]:
    """A new ``.NAME.XXXXXXXX.tmp`` beside ``path``, opened for writing, its mode following the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(TEMP_ATTEMPTS):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, FILE_MODE), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    fd, tmp = create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, doc) -> None:
    atomic_write_bytes(path, (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """A safetensors file, serialised in memory and written like any other file (safetensors' own
    ``save_file`` would create it with mode 0600)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, serialize(tensors, metadata=metadata))
