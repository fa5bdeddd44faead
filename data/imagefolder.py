"""Read an image-folder tree: ``train/<class>/<name>.png|jpg`` and ``test/<class>/...``, as a folder or a tar.

The tree may sit under one top folder (``cifar10-jpeg/train/...``). Class folders must be CIFAR-10 class
names; the label is the name's CIFAR-10 index. Ids are the paths below the top folder
(``train/airplane/0001.jpg``), rows sorted by id. Files outside train/ and test/ (a README) are ignored.
"""

from collections.abc import Collection

import numpy as np

from data.classes import CLASSES, LABEL_OF, SPLITS
from data.errors import DataError
from data.images import IMAGE_SUFFIXES, decode_many
from data.records import Records
from data.tree import Tree


def is_imagefolder(names: Collection[str]) -> bool:
    return any(is_imagefolder_file(name) for name in names)


def is_imagefolder_file(name: str) -> bool:
    return name.split("/", 1)[0] in SPLITS


def read_imagefolder(tree: Tree) -> dict[str, Records]:
    splits = {}
    for split in SPLITS:
        names = sorted(name for name in tree.files if name.split("/", 1)[0] == split)
        labels = np.array([_label(tree, name) for name in names], np.int8)
        pixels = decode_many([(tree.where(name), tree.files[name]) for name in names])
        splits[split] = Records(names, labels, pixels)
    return splits


def _label(tree: Tree, name: str) -> int:
    parts = name.split("/")
    if len(parts) != 3 or not parts[2].lower().endswith(IMAGE_SUFFIXES):
        raise DataError(f"{tree.where(name)}: expected <split>/<class>/<name>.png|.jpg")
    if parts[1] not in LABEL_OF:
        raise DataError(f"{tree.where(name)}: unknown class {parts[1]!r} (CIFAR-10: {', '.join(CLASSES)})")
    return LABEL_OF[parts[1]]
