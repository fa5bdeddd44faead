"""Reads W&B run files (`.wandb` transaction logs) back, with no network and no wandb service.

wandb 0.2x/0.3x has no public Python reader for them (the old `wandb/sdk/internal/datastore.py` is gone),
so this parses the format directly with wandb's own protobuf classes. A `.wandb` file is a LevelDB-style
log: a 7-byte header (b":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of chunks. Each chunk has a
7-byte header (CRC-32 of type byte + data, little-endian data length, type FULL/FIRST/MIDDLE/LAST); a
block's tail shorter than a header is zero padding. The chunks of one record, joined, are one serialized
`wandb_internal_pb2.Record`.

A restarted training with the same run id gets a second run folder whose history starts over, so
`read_history` merges every folder of a run by epoch, in start order, later folders winning.
"""

from __future__ import annotations

import json
import logging
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from grid.wandb_settings import offline_root

log = logging.getLogger(__name__)

_FILE_HEADER = struct.Struct("<4sHB")  # ident, magic, version
_CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
_IDENT, _MAGIC, _VERSION = b":W&B", 0xBEE1, 0
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_records(path: Path) -> Iterator[Any]:
    """Every record of a `.wandb` file, in order. A torn tail (a writer that died mid-record) ends the
    iteration with a warning; a file that is not a W&B log raises ValueError. Yields
    `wandb.proto.wandb_internal_pb2.Record` messages."""
    from wandb.proto import wandb_internal_pb2 as pb  # here: importing wandb takes seconds

    data = Path(path).read_bytes()
    if len(data) < _FILE_HEADER.size or _FILE_HEADER.unpack_from(data) != (_IDENT, _MAGIC, _VERSION):
        raise ValueError(f"{path}: not a W&B transaction log (bad header)")
    pos, parts = _FILE_HEADER.size, []
    while pos + _CHUNK_HEADER.size <= len(data):
        if _BLOCK - pos % _BLOCK < _CHUNK_HEADER.size:  # zero padding up to the next block
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = _CHUNK_HEADER.unpack_from(data, pos)
        chunk = data[pos + _CHUNK_HEADER.size : pos + _CHUNK_HEADER.size + length]
        if kind == 0 and length == 0:  # pre-allocated, never written
            break
        if len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            log.warning("%s: torn or corrupt record at byte %d; reading stops there", path, pos)
            return
        pos += _CHUNK_HEADER.size + length
        parts = [chunk] if kind in (_FULL, _FIRST) else [*parts, chunk]
        if kind in (_FULL, _LAST):
            record = pb.Record()
            record.ParseFromString(b"".join(parts))
            yield record


def _value(item: Any) -> Any:
    """A history item's value: the legacy JSON form, or the typed one (x_history_value_encoding)."""
    if item.value_json:
        return json.loads(item.value_json)
    kind = item.WhichOneof("value")
    if kind in (None, "none"):
        return None
    return json.loads(item.json) if kind == "json" else getattr(item, kind)


def read_file(path: Path) -> tuple[float, list[dict[str, Any]]]:
    """(the run's start time in seconds, its history rows without wandb's `_step`/`_runtime`/...)."""
    start, rows = 0.0, []
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run" and record.run.HasField("start_time"):
            start = record.run.start_time.seconds + record.run.start_time.nanos * 1e-9
        elif kind == "history":
            items = ((i.key or ".".join(i.nested_key), i) for i in record.history.item)
            rows.append({k: _value(i) for k, i in items if not k.startswith("_")})
    return start, rows


def is_closed(path: Path) -> bool:
    """Whether a `.wandb` file holds its run's exit record. wandb-core writes the file asynchronously:
    `run.finish()` may return a moment before the records reach the disk."""
    try:
        return any(r.WhichOneof("record_type") == "exit" for r in read_records(path))
    except (OSError, ValueError):  # not created or not past its header yet
        return False


def run_histories(wandb_dir: Path, run_id: str) -> list[list[dict[str, Any]]]:
    """The history rows of every run folder of `run_id` (offline and online), in start order."""
    # <mode>-<YYYYMMDD_HHMMSS>-<id>, with "-<n>" appended when a folder of that name exists already
    files = offline_root(wandb_dir).glob(f"*-{run_id}*/run-{run_id}.wandb")
    runs = [(*read_file(f), f.parent.name) for f in files]
    return [rows for _, rows, _ in sorted(runs, key=lambda r: (r[0], r[2]))]  # by start time, then name


def read_history(wandb_dir: Path, run_id: str) -> pd.DataFrame:
    """One row per epoch, merged over every run folder of `run_id`: a later folder's row for an epoch
    replaces an earlier one's. Rows without an `epoch` are left out. Sorted by epoch; columns: epoch, then
    the metric names in alphabetical order."""
    by_epoch: dict[Any, dict[str, Any]] = {}
    for rows in run_histories(wandb_dir, run_id):
        for row in rows:
            if row.get("epoch") is not None:
                by_epoch[row["epoch"]] = row
    if not by_epoch:
        return pd.DataFrame(columns=["epoch"])
    rows = [by_epoch[e] for e in sorted(by_epoch)]
    columns = ["epoch", *sorted({k for row in rows for k in row} - {"epoch"})]  # wandb keeps no key order
    return pd.DataFrame(rows, columns=columns)


def last_epoch(wandb_dir: Path, run_id: str) -> int:
    """The highest epoch any run folder of `run_id` holds on disk; 0 if none."""
    history = read_history(wandb_dir, run_id)
    return int(history["epoch"].max()) if len(history) else 0
