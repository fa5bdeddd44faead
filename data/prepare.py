"""Turn a CIFAR-10 source into checked, deterministic Parquet shards.

    python -m data.prepare [SOURCE] --out DEST [--overwrite] [--cache-dir DIR]

SOURCE is one of (a folder, or a .tar / .tar.gz of one; everything may sit under one top folder):
  official     cifar-10-python.tar.gz or its cifar-10-batches-py/ folder (pickles read without running code)
  kaggle       a folder holding train/<id>.png, trainLabels.csv, test/<id>.png, testLables.csv (or
               testLabels.csv), columns id,label with class names: the layout the paper used
  imagefolder  train/<class>/*.png|jpg and test/<class>/*, e.g. ../shared/data/cifar10-jpeg.tar.gz
Without SOURCE the official archive is downloaded into the cache folder (default ~/.cache/cifar-grid, or
$CIFAR_GRID_CACHE) and checked by MD5.

DEST is a local folder or a URI (s3://bucket/prefix). Shards are written to a temporary folder first and
manifest.json is written last, so DEST never holds partial output that looks complete. A non-empty DEST
needs --overwrite, which deletes only the files the old manifest lists (and the manifest itself).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from data import fs
from data.download import fetch_official
from data.errors import DataError
from data.shards import MANIFEST, parse_manifest, write_shards
from data.sources import read_source


def prepare(
    source: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> dict:
    """Write the shards of ``source`` (None: the official download) to ``out``; return the manifest."""
    out = os.fspath(out)
    filesystem, dest = fs.resolve(out)
    existing, old = _existing_output(filesystem, dest, out, overwrite)  # fail before the slow part
    dataset = read_source(source if source is not None else fetch_official(cache_dir))
    described = {"kind": dataset.kind, "name": dataset.name, "sha256": dataset.sha256}
    local = isinstance(filesystem, pafs.LocalFileSystem)
    try:
        # Stage next to a local DEST so the final moves are renames within one filesystem.
        staging_parent = os.path.dirname(dest) if local else None
        if staging_parent:
            os.makedirs(staging_parent, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".prepare-", dir=staging_parent) as tmp:
            staged = Path(tmp, "shards")
            staged.mkdir()
            manifest = write_shards(staged, dataset.splits, described)
            if local and not existing:
                os.makedirs(dest, exist_ok=True)
                os.replace(staged, dest)  # an empty DEST is replaced in one atomic rename
            else:
                _publish(staged, filesystem, dest, out, existing, old)
    except OSError as e:  # disk full, no permission, another process filled DEST meanwhile, ...
        raise DataError(f"{out}: {fs.describe(e)}") from None
    return manifest


def _existing_output(filesystem: pafs.FileSystem, dest: str, out: str, overwrite: bool) -> tuple[set[str], dict]:
    """The names already in DEST and its old manifest ({} if none); refuse a non-empty DEST without overwrite."""
    try:
        info = filesystem.get_file_info(dest)
        if info.type == pafs.FileType.File:
            raise DataError(f"{out}: exists and is not a folder")
        if info.type == pafs.FileType.NotFound:
            return set(), {}
        entries = filesystem.get_file_info(pafs.FileSelector(dest, allow_not_found=True))
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"{out}: {fs.describe(e)}") from None
    existing = {os.path.basename(entry.path) for entry in entries}
    if existing and not overwrite:
        raise DataError(f"{out}: not empty; pass --overwrite to replace the shards prepare wrote there")
    old = {}
    if MANIFEST in existing:
        where = fs.join(out, MANIFEST)
        old = parse_manifest(fs.read_bytes(filesystem, fs.join(dest, MANIFEST), where).to_pybytes(), where)
    return existing, old


def _publish(staged: Path, filesystem: pafs.FileSystem, dest: str, out: str, existing: set[str], old: dict) -> None:
    """Replace the old output in DEST by the staged files: old manifest out first, new manifest in last."""
    old_files = {shard["file"] for shard in old.get("shards", [])}
    new_files = sorted(p.name for p in staged.iterdir() if p.name != MANIFEST)
    foreign = sorted((set(new_files) & existing) - old_files)
    if foreign:
        raise DataError(f"{fs.join(out, foreign[0])}: exists and was not written by prepare; not overwriting it")
    try:
        for name in [MANIFEST, *sorted(old_files & existing)]:
            if name in existing:
                filesystem.delete_file(fs.join(dest, name))
        for name in [*new_files, MANIFEST]:
            _put(staged / name, filesystem, fs.join(dest, name))
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"{out}: {fs.describe(e)}") from None


def _put(local_file: Path, filesystem: pafs.FileSystem, path: str) -> None:
    if isinstance(filesystem, pafs.LocalFileSystem):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.replace(local_file, path)
        return
    with open(local_file, "rb") as src, filesystem.open_output_stream(path) as dst:
        shutil.copyfileobj(src, dst, 1 << 22)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.prepare",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", nargs="?", help="archive or folder (see above); omit to download the official one")
    parser.add_argument("--out", required=True, help="shard folder or URI (s3://bucket/prefix)")
    parser.add_argument("--overwrite", action="store_true", help="replace the shards of an earlier prepare in DEST")
    parser.add_argument("--cache-dir", help="download cache (default $CIFAR_GRID_CACHE or ~/.cache/cifar-grid)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        manifest = prepare(args.source, args.out, overwrite=args.overwrite, cache_dir=args.cache_dir)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sizes = ", ".join(f"{rows} {split}" for split, rows in manifest["splits"].items())
    print(
        f"{args.out}: {sizes} images from {manifest['source']['kind']} source {manifest['source']['name']} "
        f"in {len(manifest['shards'])} shards ({time.perf_counter() - start:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
