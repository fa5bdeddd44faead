"""Turn a source path into per-split records, whatever its layout.

A source is a folder or a tar (.tar, .tar.gz, ...) holding one of:
  official     CIFAR-10's python batches (cifar-10-python.tar.gz, cifar-10-batches-py/)
  kaggle       train/<id>.png + trainLabels.csv, test/<id>.png + testLables.csv (the paper's layout)
  imagefolder  train/<class>/*.png|jpg and test/<class>/*
The layout is recognised from file names alone; only its files are read (and, for a folder, hashed).
"""

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from data.errors import DataError
from data.imagefolder import is_imagefolder, is_imagefolder_file, read_imagefolder
from data.kaggle import is_kaggle, is_kaggle_file, read_kaggle
from data.official import is_official, is_official_file, read_official
from data.records import Records
from data.tree import Tree, file_digest, read_tree


@dataclass(frozen=True)
class Layout:
    matches: Callable[[Collection[str]], bool]  # recognise the layout from all file names
    owns: Callable[[str], bool]  # the files that make up the data set
    read: Callable[[Tree], dict[str, Records]]


# Checked in order: an official or Kaggle folder may also look like it has train/ images.
LAYOUTS = {
    "official": Layout(is_official, is_official_file, read_official),
    "kaggle": Layout(is_kaggle, is_kaggle_file, read_kaggle),
    "imagefolder": Layout(is_imagefolder, is_imagefolder_file, read_imagefolder),
}


@dataclass(frozen=True)
class Source:
    kind: str
    name: str  # the file or folder name, for the manifest
    sha256: str
    splits: dict[str, Records]


def detect(names: Collection[str]) -> str | None:
    return next((kind for kind, layout in LAYOUTS.items() if layout.matches(names)), None)


def dataset_files(names: Collection[str]) -> list[str]:
    """The names that belong to the layout ``names`` show (none if they show no layout)."""
    kind = detect(names)
    return [name for name in names if kind and LAYOUTS[kind].owns(name)]


def read_source(path: str | os.PathLike) -> Source:
    """Read and check every image of the source at ``path``."""
    tree = read_tree(path, dataset_files)
    kind = detect(tree.files)
    if kind is None:
        raise DataError(
            f"{path}: not a CIFAR-10 source (expected official batches, a Kaggle folder with "
            "trainLabels.csv, or train/<class>/ image folders)"
        )
    splits = LAYOUTS[kind].read(tree)
    for split, records in splits.items():
        records.check(str(path), split)
    return Source(kind, os.path.basename(os.path.normpath(path)), tree.sha256, splits)


def source_sha256(path: str | os.PathLike) -> str:
    """The sha256 ``read_source`` reports for ``path``: an archive's file hash, a folder's data-set files."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: does not exist")
    return read_tree(path, dataset_files).sha256 if path.is_dir() else file_digest(path)
