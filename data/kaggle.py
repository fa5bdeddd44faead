"""Read the Kaggle CIFAR-10 layout the paper used: a folder (or tar of one) holding

    train/<id>.png  trainLabels.csv                      (columns id,label; label a class name)
    test/<id>.png   testLables.csv (Kaggle's spelling) or testLabels.csv

Ids are ``train/00001``, ``test/00001``, ... (the file's number, zero-padded to 5 digits), the same ids the
official batches get for the same images, in numeric order.
"""

import csv
import io
from collections.abc import Collection

import numpy as np

from data.classes import CLASSES, LABEL_OF
from data.errors import DataError
from data.images import decode_many
from data.records import Records
from data.tree import Tree

LABEL_FILES = {"train": ("trainLabels.csv",), "test": ("testLables.csv", "testLabels.csv")}


def is_kaggle(names: Collection[str]) -> bool:
    return "trainLabels.csv" in names


def is_kaggle_file(name: str) -> bool:
    return name.split("/", 1)[0] in LABEL_FILES or any(name in csvs for csvs in LABEL_FILES.values())


def read_kaggle(tree: Tree) -> dict[str, Records]:
    return {split: _read_split(tree, split) for split in LABEL_FILES}


def _read_split(tree: Tree, split: str) -> Records:
    present = [name for name in LABEL_FILES[split] if name in tree.files]
    if len(present) != 1:
        problem = "missing" if not present else f"ambiguous next to {present[1]}"
        raise DataError(f"{tree.where(LABEL_FILES[split][0])}: {problem}")
    labels = _read_labels(tree, present[0])
    images = {name: contents for name, contents in tree.files.items() if name.startswith(f"{split}/")}
    unlabelled = sorted(set(images) - {f"{split}/{n}.png" for n in labels})
    if unlabelled:
        raise DataError(f"{tree.where(unlabelled[0])}: no row in {present[0]}")
    numbers = sorted(labels)
    names = [f"{split}/{number}.png" for number in numbers]
    missing = [name for name in names if name not in images]
    if missing:
        raise DataError(f"{tree.where(missing[0])}: missing (listed in {present[0]})")
    pixels = decode_many([(tree.where(name), images[name]) for name in names])
    ids = [f"{split}/{n:05d}" for n in numbers]
    return Records(ids, np.array([labels[n] for n in numbers], np.int8), pixels)


def _read_labels(tree: Tree, name: str) -> dict[int, int]:
    where = tree.where(name)
    try:
        rows = list(csv.reader(io.StringIO(bytes(tree.files[name]).decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{where}: not a CSV file ({e})") from None
    if not rows or [c.strip().lower() for c in rows[0]] != ["id", "label"]:
        raise DataError(f"{where}: expected the header id,label")
    labels: dict[int, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2 or not row[0].strip().isdigit():
            raise DataError(f"{where}: line {line}: expected <id>,<class name>, got {','.join(row)!r}")
        number, label = int(row[0]), row[1].strip()
        if label not in LABEL_OF:
            raise DataError(f"{where}: line {line}: unknown class {label!r} (CIFAR-10: {', '.join(CLASSES)})")
        if number in labels:
            raise DataError(f"{where}: line {line}: duplicate id {number}")
        labels[number] = LABEL_OF[label]
    return labels
