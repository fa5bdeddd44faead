"""Read CIFAR-10's official python batches (``cifar-10-python.tar.gz`` or ``cifar-10-batches-py/``).

Ids are ``train/00001`` .. ``train/50000`` (data_batch_1 row 0 first) and ``test/00001`` .. ``test/10000``:
one-based like the Kaggle layout's file names, so both copies of the same images get the same ids.
"""

from collections.abc import Collection

import numpy as np

from data.classes import CLASSES
from data.errors import DataError
from data.images import PIXELS
from data.records import Records
from data.safe_pickle import loads
from data.tree import Tree

BATCHES = {"train": [f"data_batch_{k}" for k in range(1, 6)], "test": ["test_batch"]}
META = "batches.meta"
FILES = frozenset([*BATCHES["train"], *BATCHES["test"], META])


def is_official(names: Collection[str]) -> bool:
    return "data_batch_1" in names or "test_batch" in names


def is_official_file(name: str) -> bool:
    return name in FILES


def read_official(tree: Tree) -> dict[str, Records]:
    if META in tree.files:
        _check_meta(tree)
    splits = {}
    for split, names in BATCHES.items():
        missing = [n for n in names if n not in tree.files]
        if missing:
            raise DataError(f"{tree.where(missing[0])}: missing (the official layout has {', '.join(names)})")
        batches = [_read_batch(tree, name) for name in names]
        labels = np.concatenate([b[0] for b in batches])
        ids = [f"{split}/{k:05d}" for k in range(1, len(labels) + 1)]
        splits[split] = Records(ids, labels.astype(np.int8), np.concatenate([b[1] for b in batches]))
    return splits


def _field(batch: object, key: str) -> object:
    # encoding="bytes" gives bytes keys; a batch re-pickled by Python 3 may have str keys.
    for k in (key.encode(), key):
        if isinstance(batch, dict) and k in batch:
            return batch[k]
    raise KeyError(key)


def _read_batch(tree: Tree, name: str) -> tuple[np.ndarray, np.ndarray]:
    where = tree.where(name)
    batch = loads(tree.files[name], where)
    try:
        pixels, labels = _field(batch, "data"), np.asarray(_field(batch, "labels"))
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: not a CIFAR-10 batch (expected a dict with data and labels)") from None
    if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.shape[1:] == (PIXELS,)):
        raise DataError(f"{where}: data is not a uint8 array of N x {PIXELS} pixels")
    if labels.shape != (len(pixels),) or labels.dtype.kind not in "iu":
        raise DataError(f"{where}: labels are not {len(pixels)} integers")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(f"{where}: label outside 0..9 ({labels.min()}..{labels.max()})")
    return labels, pixels


def _check_meta(tree: Tree) -> None:
    where = tree.where(META)
    meta = loads(tree.files[META], where)
    try:
        names = tuple(n.decode() if isinstance(n, bytes) else n for n in _field(meta, "label_names"))
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise DataError(f"{where}: not CIFAR-10's batches.meta (no label_names)") from None
    if names != CLASSES:
        raise DataError(f"{where}: class names {names} are not CIFAR-10's")
