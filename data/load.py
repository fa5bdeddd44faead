"""Load shards into CPU tensors: train / val / test splits, checked against the manifest's checksums."""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import random_split

from data import fs
from data.errors import DataError
from data.shards import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    ShardColumns,
    max_shard_bytes,
    parse_manifest,
    parse_shard,
    sha256_hex,
)


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8 [N, 3, 32, 32]
    labels: torch.Tensor  # int64 [N]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Cifar10:
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]
    manifest_sha256: str
    uri: str


def load(
    dest: str | os.PathLike,
    *,
    val_size: int = 10_000,
    split_seed: int = 0,
    max_train_images: int | None = None,
    max_eval_images: int | None = None,
    subset_seed: int = 0,
) -> Cifar10:
    """Read the shards at ``dest`` (a folder or URI), verifying every shard's sha256 before use.

    Validation is ``random_split``'s second part of the training rows for lengths [n - val_size, val_size]
    with ``torch.Generator().manual_seed(split_seed)`` (the paper's split at seed 0). ``max_train_images``
    and ``max_eval_images`` (for val and for test) pick seeded class-stratified subsets, in the same order.
    """
    uri = os.fspath(dest)
    filesystem, root = fs.resolve(uri)
    where = fs.join(uri, MANIFEST)
    manifest_bytes = fs.read_bytes(filesystem, fs.join(root, MANIFEST), where, MAX_MANIFEST_BYTES).to_pybytes()
    manifest = parse_manifest(manifest_bytes, fs.join(uri, MANIFEST))
    shards = manifest["shards"]
    columns = _read_shards(filesystem, root, uri, shards)
    train, test = (
        _concat([columns[k] for k, shard in enumerate(shards) if shard["split"] == split], uri, split)
        for split in ("train", "test")
    )

    n = len(train.ids)
    if not 0 <= val_size <= n:
        raise ValueError(f"val_size={val_size} is outside 0..{n} (the training rows)")
    generator = torch.Generator().manual_seed(split_seed)
    train_part, val_part = random_split(range(n), [n - val_size, val_size], generator=generator)
    train_rows, val_rows = np.asarray(train_part.indices, np.int64), np.asarray(val_part.indices, np.int64)

    train_rows = train_rows[stratified_subset(train.labels[train_rows], max_train_images, subset_seed)]
    val_rows = val_rows[stratified_subset(train.labels[val_rows], max_eval_images, subset_seed + 1)]
    test_rows = stratified_subset(test.labels, max_eval_images, subset_seed + 2)
    return Cifar10(
        train=_split(train, train_rows),
        val=_split(train, val_rows),
        test=_split(test, test_rows),
        classes=tuple(manifest["classes"]),
        manifest_sha256=sha256_hex(manifest_bytes),
        uri=uri,
    )


def stratified_subset(labels: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """Ascending positions of a seeded random subset of ``size`` rows with the classes' proportions."""
    n = len(labels)
    if size is None or size >= n:
        return np.arange(n)
    if size < 0:
        raise ValueError(f"subset size {size} is negative")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / n
    quota = np.floor(exact).astype(np.int64)
    # The largest remainders take the rows left over after flooring, so the quotas add up to size.
    quota[np.argsort(quota - exact, kind="stable")[: size - quota.sum()]] += 1
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(picks))


def _read_shards(filesystem, root: str, uri: str, shards: list[dict]) -> list[ShardColumns]:
    def read(shard: dict) -> ShardColumns:
        where = fs.join(uri, shard["file"])
        # One read: the same buffer is hashed and then parsed.
        payload = fs.read_bytes(filesystem, fs.join(root, shard["file"]), where, max_shard_bytes(shard["rows"]))
        return parse_shard(payload, shard, where)

    # hashlib and the Parquet reader release the GIL, so shards are read and hashed in parallel.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1, max(1, len(shards)))) as pool:
        return list(pool.map(read, shards))


def _concat(parts: list[ShardColumns], uri: str, split: str) -> ShardColumns:
    if not parts:
        raise DataError(f"{fs.join(uri, MANIFEST)}: lists no {split} shards")
    if len(parts) == 1:
        return parts[0]  # _split copies its rows out of the Arrow buffer anyway
    ids = [i for p in parts for i in p.ids]
    return ShardColumns(ids, np.concatenate([p.labels for p in parts]), np.concatenate([p.pixels for p in parts]))


def _split(columns: ShardColumns, rows: np.ndarray) -> Split:
    images = torch.from_numpy(columns.pixels[rows]).view(-1, 3, 32, 32)
    labels = torch.from_numpy(columns.labels[rows].astype(np.int64))
    return Split(images, labels, [columns.ids[i] for i in rows.tolist()])
