"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never a partial one.

Each write goes to a temp file in the destination's folder (same filesystem, so `os.replace` is an atomic
rename), is flushed and fsynced, and only then replaces the destination. On any error the temp file is
removed and the destination is left untouched. A process killed mid-write can leave a `.<name>.*.tmp`
file behind, but never a truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

# mkstemp creates files 0600; give the final file the mode a plain open() would have. Read once at import
# (os.umask can only be read by setting it, which is not thread-safe later on).
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Opens a temp file beside `path`; on a clean exit it is fsynced and renamed to `path`."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        text = mode == "w"
        with os.fdopen(fd, mode, encoding=encoding if text else None, newline="" if text else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temp file behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform/filesystem allows opening a folder.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> Path:
    # Serialize first: an unserializable object must fail before anything is written.
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def write_parquet(path: str | os.PathLike[str], df: pd.DataFrame, *, index: bool = False) -> Path:
    with atomic_open(path, "wb") as f:
        df.to_parquet(f, index=index)
    return Path(path)


def write_csv(path: str | os.PathLike[str], df: pd.DataFrame, *, index: bool = False) -> Path:
    with atomic_open(path, "w", encoding="utf-8") as f:
        df.to_csv(f, index=index)
    return Path(path)


def folder_problem(path: str | os.PathLike[str]) -> str | None:
    """Why `path` cannot be (or become) a folder this process writes into; None when it can.

    Checked before a run starts, so a bad --out or --storage is refused before anything is written."""
    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        where = "exists" if existing == path else f"is inside {existing}, which exists"
        return f"{where} and is not a folder"
    try:  # a probe, not os.access: root passes access() checks where a read-only mount still refuses
        os.rmdir(tempfile.mkdtemp(prefix=".write-probe-", dir=existing))
    except OSError as e:
        reason = e.strerror or type(e).__name__
        return f"is not writable ({reason})" if existing == path else f"cannot be created in {existing} ({reason})"
    return None
