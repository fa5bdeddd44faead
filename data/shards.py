"""The shard format: ``<split>-<k>.parquet`` files of up to 10,000 rows plus ``manifest.json``.

Columns: id (string), split (string), label (int8, 0..9), pixels (fixed_size_binary(3072), CHW planar).
Files are uncompressed (CIFAR pixels barely compress, and plain pages parse at memory speed) and written
deterministically, so the same source gives byte-identical shards.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data.classes import CLASSES
from data.errors import DataError
from data.images import PIXELS
from data.records import Records

FORMAT = "cifar-grid-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_ROWS = 10_000
CIFAR10_ROWS = {"train": 50_000, "test": 10_000}  # a source may be a subset, never more
MAX_MANIFEST_BYTES = 1 << 20  # a manifest of CIFAR-10's 6 shards is about 2 KB


def max_shard_bytes(rows: int) -> int:
    """The most a shard of ``rows`` rows may take: its pixels, ids and Parquet's pages and footer, with room."""
    return rows * (PIXELS + 256) + (1 << 20)


SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("split", pa.string()),
        ("label", pa.int8()),
        ("pixels", pa.binary(PIXELS)),
    ]
)


def sha256_hex(payload: bytes | memoryview | pa.Buffer) -> str:
    return hashlib.sha256(payload).hexdigest()


def write_shards(folder: Path, splits: dict[str, Records], source: dict[str, str]) -> dict:
    """Write every split's shards into ``folder``, then the manifest (last); return the manifest."""
    shards = []
    for split, records in splits.items():
        for k, start in enumerate(range(0, len(records.ids), SHARD_ROWS)):
            rows = slice(start, start + SHARD_ROWS)
            name = f"{split}-{k}.parquet"
            payload = _parquet_bytes(split, records.ids[rows], records.labels[rows], records.pixels[rows])
            (folder / name).write_bytes(payload)
            shards.append({"file": name, "split": split, "rows": len(records.ids[rows]), "sha256": sha256_hex(payload)})
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": source,
        "classes": list(CLASSES),
        "splits": {split: len(records.ids) for split, records in splits.items()},
        "shards": shards,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _parquet_bytes(split: str, ids: list[str], labels: np.ndarray, pixels: np.ndarray) -> pa.Buffer:
    pixels = np.ascontiguousarray(pixels)
    columns = [
        pa.array(ids, pa.string()),
        pa.array([split] * len(ids), pa.string()),
        pa.array(labels, pa.int8()),
        pa.FixedSizeBinaryArray.from_buffers(pa.binary(PIXELS), len(ids), [None, pa.py_buffer(pixels)]),
    ]
    table = pa.Table.from_arrays(columns, schema=SCHEMA)
    # One row group; no statistics (min/max of pixel blobs is useless); dictionary only for the constant split.
    sink = pa.BufferOutputStream()
    pq.write_table(
        table, sink, compression="none", use_dictionary=["split"], write_statistics=False, row_group_size=len(ids)
    )
    return sink.getvalue()


def parse_manifest(payload: bytes, where: str) -> dict:
    """Parse and check a manifest; refuses newer formats and shard names that are not plain file names."""
    try:
        manifest = json.loads(payload)
        version, shards = manifest["format_version"], manifest["shards"]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{where}: not a shard manifest ({type(e).__name__}: {e})") from None
    if manifest.get("format") != FORMAT or not isinstance(version, int):
        raise DataError(f"{where}: not a {FORMAT} manifest")
    if version > FORMAT_VERSION:
        raise DataError(
            f"{where}: format version {version} is newer than this code reads ({FORMAT_VERSION}); update cifar-grid"
        )
    for shard in shards:
        name = shard.get("file", "") if isinstance(shard, dict) else ""
        # Names are joined to DEST and --overwrite deletes them: only plain names written by prepare pass.
        if not (name.endswith(".parquet") and "/" not in name and "\\" not in name and not name.startswith(".")):
            raise DataError(f"{where}: bad shard entry {shard!r}")
        rows = shard.get("rows")
        if shard.get("split") not in ("train", "test") or not isinstance(rows, int) or not 1 <= rows <= SHARD_ROWS:
            raise DataError(f"{where}: bad shard entry {shard!r}")
    _check_cifar10(manifest, where)
    return manifest


def _check_cifar10(manifest: dict, where: str) -> None:
    """What the manifest declares must be CIFAR-10: its classes, at most its split sizes, rows that add up."""
    if manifest.get("classes", list(CLASSES)) != list(CLASSES):
        raise DataError(f"{where}: classes {manifest.get('classes')!r} are not CIFAR-10's")
    counted = {split: sum(s["rows"] for s in manifest["shards"] if s["split"] == split) for split in CIFAR10_ROWS}
    declared = manifest.get("splits", counted)
    for split, most in CIFAR10_ROWS.items():
        if counted[split] > most:
            raise DataError(f"{where}: {counted[split]:,} {split} rows, more than CIFAR-10's {most:,}")
        if not isinstance(declared, dict) or declared.get(split) != counted[split]:
            raise DataError(f"{where}: splits {declared!r} do not add up to its shards' rows {counted}")


@dataclass(frozen=True)
class ShardColumns:
    ids: list[str]
    labels: np.ndarray  # int8 [N]
    pixels: np.ndarray  # uint8 [N, 3072], a view of the Arrow buffer


def parse_shard(payload: pa.Buffer, shard: dict, where: str) -> ShardColumns:
    """Check ``payload`` against its manifest entry (sha256, schema, rows, split, labels) and parse it."""
    digest = sha256_hex(payload)
    if digest != shard["sha256"]:
        raise DataError(f"{where}: sha256 {digest} does not match the manifest's {shard['sha256']}")
    try:
        table = pq.read_table(pa.BufferReader(payload))
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{where}: not a readable Parquet file ({e})") from None
    if not table.schema.remove_metadata().equals(SCHEMA):
        raise DataError(
            f"{where}: columns {table.schema.to_string(show_schema_metadata=False)!r} are not {SCHEMA.to_string()!r}"
        )
    if table.num_rows != shard["rows"]:
        raise DataError(f"{where}: {table.num_rows} rows, the manifest says {shard['rows']}")
    if table.num_rows and not pc.all(pc.equal(table["split"], shard["split"])).as_py():
        raise DataError(f"{where}: rows of another split than {shard['split']}")
    labels = table["label"].to_numpy()
    if table.num_rows and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(f"{where}: label outside 0..9")
    if table["pixels"].null_count:
        raise DataError(f"{where}: missing pixels")
    chunks = [_pixel_matrix(chunk) for chunk in table["pixels"].chunks]
    pixels = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    return ShardColumns(table["id"].to_pylist(), labels, pixels)


def _pixel_matrix(chunk: pa.FixedSizeBinaryArray) -> np.ndarray:
    """Zero-copy: a fixed_size_binary(3072) array's data buffer is its N x 3072 pixel matrix."""
    flat = np.frombuffer(chunk.buffers()[1], np.uint8, count=len(chunk) * PIXELS, offset=chunk.offset * PIXELS)
    return flat.reshape(len(chunk), PIXELS)
