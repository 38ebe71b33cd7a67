"""Atomic writes and content hashes shared by every on-disk cache.

A cache entry is only ever visible complete: it is written to a temporary file in the same
directory, flushed and fsynced, then moved into place with ``os.replace`` (atomic on POSIX).
A run killed mid-write leaves at most a ``*.tmp-*`` file, which is ignored and overwritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stable_hash(obj: Any, length: int = 16) -> str:
    """Short hex digest of a JSON-able object; key order does not matter."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Call ``write(fh)`` on a temp file beside ``path``, then move it into place atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def atomic_save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Save arrays with ``np.savez`` atomically (``path`` should end in ``.npz``)."""
    return atomic_write(path, lambda fh: np.savez(fh, **arrays))


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda fh: torch.save(obj, fh))


# ---- which cache entries a process touched (provenance) ---------------------------------------
# Every on-disk cache of nml (feature extraction, pre-training checkpoints, the cached job map)
# calls :func:`record_cache_use` once per entry it reads or computes. The log is a plain list of
# ``(key, reused)`` in this process, appended to in O(1); the report's provenance reads slices of
# it (:func:`cache_log_position`, :func:`cache_uses_since`). Entries touched inside worker
# processes are not seen, but no cache entry is read or written there: the job map reads and
# writes its results in the calling process.

_CACHE_LOG: list[tuple[str, bool]] = []


def record_cache_use(key: str, *, reused: bool) -> None:
    """Note that the cache entry ``key`` (``"<cache>/<content key>"``, e.g. ``"features/3f…"``)
    was read from disk (``reused=True``) or computed and written (``reused=False``)."""
    _CACHE_LOG.append((key, reused))


def cache_log_position() -> int:
    """How many cache uses this process has recorded so far (a mark for :func:`cache_uses_since`)."""
    return len(_CACHE_LOG)


def cache_uses_since(position: int) -> dict[str, bool]:
    """The cache entries touched since ``position``: ``{key: reused}``, where an entry counts as
    reused only if every touch read it (an entry computed, then read again, was computed)."""
    uses: dict[str, bool] = {}
    for key, reused in _CACHE_LOG[position:]:
        uses[key] = uses.get(key, True) and reused
    return uses
