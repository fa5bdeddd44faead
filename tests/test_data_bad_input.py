"""Bad input: one line naming the file and the problem, and no output that looks complete."""

import json
import os
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data
from data.prepare import main
from tests.fixtures_data import (
    add_tar_member,
    batch_pickle,
    synthetic,
    tar_folder,
    write_imagefolder,
    write_kaggle,
    write_official,
)

DATA = synthetic(n_train=20, n_test=10)


def refused(source: Path, tmp_path: Path, capsys, pattern: str) -> str:
    """Run the CLI on ``source``: exit 2, one ``error:`` line matching ``pattern``, nothing in DEST."""
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    line = captured.err.removesuffix("\n")
    assert captured.out == "" and "\n" not in line and line.startswith("error: "), captured.err
    assert re.search(pattern, line), line
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".prepare-")]
    return line


# --- archives -------------------------------------------------------------------------------------------


def test_missing_source(tmp_path, capsys):
    refused(tmp_path / "cifar-10-python.tar.gz", tmp_path, capsys, r"cifar-10-python.tar.gz: does not exist$")


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_tar_gz(tmp_path, capsys, keep):
    archive = tar_folder(write_official(tmp_path / "src", DATA), tmp_path / "cifar.tar.gz")
    raw = archive.read_bytes()
    archive.write_bytes(raw[: int(len(raw) * keep)])
    refused(archive, tmp_path, capsys, r"cifar.tar.gz: truncated or corrupt archive")


@pytest.mark.parametrize("cut", ["inside a member", "at a header"])
def test_truncated_plain_tar(tmp_path, capsys, cut):
    archive = tar_folder(write_imagefolder(tmp_path / "src", DATA), tmp_path / "tree.tar")
    with tarfile.open(archive) as tar:
        last = tar.getmembers()[-1]
    end = last.offset_data + 100 if cut == "inside a member" else last.offset
    archive.write_bytes(archive.read_bytes()[:end])
    refused(archive, tmp_path, capsys, r"tree.tar: truncated")


def test_not_an_archive(tmp_path, capsys):
    (tmp_path / "cifar.tar.gz").write_bytes(b"just some bytes, no tar")
    refused(tmp_path / "cifar.tar.gz", tmp_path, capsys, r"cifar.tar.gz: truncated or unreadable tar archive")


def test_a_folder_that_is_no_source(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", tmp_path, capsys, r"empty: not a CIFAR-10 source")


@pytest.mark.parametrize(
    "member, kind, linkname, problem",
    [
        ("/etc/cifar-evil", tarfile.REGTYPE, "", "path leaves the archive"),
        ("cifar/../../evil.png", tarfile.REGTYPE, "", "path leaves the archive"),
        ("train/cat/link.png", tarfile.SYMTYPE, "/etc/passwd", "a link"),
        ("train/cat/hard.png", tarfile.LNKTYPE, "train/cat/0001.png", "a link"),
        ("train/cat/fifo.png", tarfile.FIFOTYPE, "", "not a regular file"),
    ],
)
def test_hostile_tar_members_are_refused(tmp_path, capsys, member, kind, linkname, problem):
    archive = add_tar_member(tmp_path / "evil.tar", member, kind=kind, linkname=linkname)
    refused(archive, tmp_path, capsys, rf"evil.tar: refused member .* \({problem}\)")
    assert not (tmp_path.parent / "evil.png").exists() and not Path("/etc/cifar-evil").exists()


def test_duplicate_tar_member(tmp_path, capsys):
    archive = tar_folder(write_imagefolder(tmp_path / "src", DATA), tmp_path / "tree.tar")
    with tarfile.open(archive, "a") as tar:
        tar.add(tmp_path / "src" / "test", arcname="src/test")
    refused(archive, tmp_path, capsys, r"tree.tar: member src/test/\w+/\d+.png appears twice")


# --- official pickles -----------------------------------------------------------------------------------


def test_pickle_that_runs_code(tmp_path, capsys):
    folder = write_official(tmp_path / "src", DATA)
    marker = tmp_path / "ran"
    evil = type("Evil", (), {"__reduce__": lambda self: (os.system, (f"touch {marker}",))})
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": evil()}, protocol=2))
    refused(folder, tmp_path, capsys, r"data_batch_3: not a CIFAR-10 pickle \(UnpicklingError: refused global")
    assert not marker.exists()


def test_official_label_outside_0_9(tmp_path, capsys):
    folder = write_official(tmp_path / "src", DATA)
    (folder / "test_batch").write_bytes(batch_pickle(DATA.test_pixels, np.r_[DATA.test_labels[:-1], 10], "t"))
    refused(folder, tmp_path, capsys, r"test_batch: label outside 0..9 \(0..10\)")


def test_official_wrong_pixel_shape(tmp_path, capsys):
    folder = write_official(tmp_path / "src", DATA)
    (folder / "data_batch_1").write_bytes(batch_pickle(np.zeros((4, 1024), np.uint8), np.zeros(4), "t"))
    refused(folder, tmp_path, capsys, r"data_batch_1: data is not a uint8 array of N x 3072 pixels")


def test_official_missing_batch(tmp_path, capsys):
    folder = write_official(tmp_path / "src", DATA)
    (folder / "data_batch_5").unlink()
    refused(folder, tmp_path, capsys, r"data_batch_5: missing")


# --- images, labels, ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image, problem",
    [
        (Image.new("RGB", (31, 32)), r"not a 32x32 RGB image \(31x32 RGB\)"),
        (Image.new("L", (32, 32)), r"not a 32x32 RGB image \(32x32 L\)"),
        (Image.new("RGBA", (32, 32)), r"not a 32x32 RGB image \(32x32 RGBA\)"),
        (None, r"not a readable PNG or JPEG image"),
    ],
)
def test_image_that_is_not_32x32_rgb(tmp_path, capsys, image, problem):
    folder = write_imagefolder(tmp_path / "src", DATA)
    bad = folder / "train" / "cat" / "bad.png"
    image.save(bad) if image else bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    refused(folder, tmp_path, capsys, rf"src/train/cat/bad.png: {problem}")


def test_image_in_a_tar_is_named_by_member(tmp_path, capsys):
    folder = write_imagefolder(tmp_path / "src", DATA)
    Image.new("RGB", (64, 64)).save(folder / "test" / "dog" / "big.png")
    refused(tar_folder(folder, tmp_path / "t.tar.gz"), tmp_path, capsys, r"t.tar.gz:src/test/dog/big.png: not a 32x32")


def test_imagefolder_unknown_class(tmp_path, capsys):
    folder = write_imagefolder(tmp_path / "src", DATA)
    (folder / "train" / "cat").rename(folder / "train" / "kitten")
    refused(folder, tmp_path, capsys, r"train/kitten/\d+.png: unknown class 'kitten'")


def test_imagefolder_empty_split(tmp_path, capsys):
    folder = write_imagefolder(tmp_path / "src", DATA)
    for path in sorted((folder / "test").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    refused(folder, tmp_path, capsys, r"src: the test split is empty")


def test_kaggle_unknown_class_name(tmp_path, capsys):
    folder = write_kaggle(tmp_path / "src", DATA)
    csv = folder / "trainLabels.csv"
    csv.write_text(csv.read_text().replace(",frog", ",toad", 1))
    refused(folder, tmp_path, capsys, r"trainLabels.csv: line \d+: unknown class 'toad'")


def test_kaggle_duplicate_id(tmp_path, capsys):
    folder = write_kaggle(tmp_path / "src", DATA)
    csv = folder / "testLables.csv"
    csv.write_text(csv.read_text() + "3,cat\n")
    refused(folder, tmp_path, capsys, r"testLables.csv: line 12: duplicate id 3")


def test_kaggle_image_without_a_label(tmp_path, capsys):
    folder = write_kaggle(tmp_path / "src", DATA)
    (folder / "train" / "1.png").rename(folder / "train" / "99.png")
    refused(folder, tmp_path, capsys, r"train/99.png: no row in trainLabels.csv")


def test_kaggle_missing_test_labels(tmp_path, capsys):
    folder = write_kaggle(tmp_path / "src", DATA)
    (folder / "testLables.csv").unlink()
    refused(folder, tmp_path, capsys, r"testLables.csv: missing")


# --- shards ---------------------------------------------------------------------------------------------


@pytest.fixture
def shards(tmp_path):
    data.prepare(write_imagefolder(tmp_path / "src", DATA), tmp_path / "shards")
    return tmp_path / "shards"


def test_shard_checksum_mismatch(shards):
    path = shards / "train-0.parquet"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(raw)
    with pytest.raises(data.DataError, match=rf"^{path}: sha256 \w+ does not match the manifest's \w+$"):
        data.load(shards, val_size=5)


def test_missing_shard(shards):
    (shards / "test-0.parquet").unlink()
    with pytest.raises(data.DataError, match=rf"^{shards / 'test-0.parquet'}: not found$"):
        data.load(shards, val_size=5)


def test_newer_manifest_format(shards):
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["format_version"] = 2
    (shards / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(data.DataError, match=r"manifest.json: format version 2 is newer than this code reads \(1\)"):
        data.load(shards)


def test_not_a_manifest(shards):
    (shards / "manifest.json").write_text("{")
    with pytest.raises(data.DataError, match=r"manifest.json: not a shard manifest"):
        data.load(shards)


# --- sizes and counts a file declares, bounded before they are trusted --------------------------------------


def test_an_archive_that_inflates_past_what_cifar10_holds_is_refused(tmp_path, capsys, monkeypatch, faults):
    """A .tar.gz bomb: 40 KB that inflates to 40 MB. The bound (1 GiB) is lowered so the test stays small."""
    monkeypatch.setattr("data.tree.MAX_PLAIN_BYTES", 4 << 20)
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("train/cat/0001.png")
        info.size = 40 << 20
        tar.addfile(info, __import__("io").BytesIO(bytes(info.size)))
    assert archive.stat().st_size < 100_000
    refused(archive, tmp_path, capsys, r"bomb.tar.gz: decompresses to more than 4 MiB, more than CIFAR-10 holds$")
    faults.record(survived=True)


def test_a_source_bigger_than_cifar10_is_refused_before_it_is_read(tmp_path, capsys, monkeypatch, faults):
    monkeypatch.setattr("data.tree.MAX_PLAIN_BYTES", 1000)
    folder = write_imagefolder(tmp_path / "src", DATA)
    refused(folder, tmp_path, capsys, r"src: [\d,.]+ MiB of files, more than CIFAR-10 holds \(0 MiB at most\)$")
    archive = tar_folder(folder, tmp_path / "tree.tar")
    refused(archive, tmp_path, capsys, r"tree.tar: [\d,.]+ MiB of files, more than CIFAR-10 holds")
    faults.record(survived=True)


def test_an_archive_with_more_members_than_cifar10_is_refused(tmp_path, capsys, monkeypatch, faults):
    monkeypatch.setattr("data.tree.MAX_MEMBERS", 30)
    archive = tar_folder(write_imagefolder(tmp_path / "src", DATA), tmp_path / "tree.tar")
    refused(archive, tmp_path, capsys, r"tree.tar: more than 30 members, more than CIFAR-10 holds$")
    faults.record(survived=True)


def _edit_manifest(shards: Path, edit) -> Path:
    path = shards / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda m: m["shards"][0].update(rows=10_001), r"bad shard entry"),
        (lambda m: m.update(classes=["cat", "dog"]), r"classes \['cat', 'dog'\] are not CIFAR-10's"),
        (lambda m: m["splits"].update(train=50_001), r"splits .* do not add up to its shards' rows"),
        (
            lambda m: m["shards"].extend(dict(m["shards"][0], file=f"train-{k}.parquet") for k in range(1, 6000)),
            r"[\d,]+ train rows, more than CIFAR-10's 50,000",
        ),
    ],
)
def test_a_manifest_that_is_not_cifar10_is_refused(shards, capsys, edit, problem, faults):
    path = _edit_manifest(shards, edit)
    before = path.read_bytes()
    argv = ["--arch", "baseline", "--activation", "relu", "--epochs", "1", "--data", str(shards), "--val-size", "5"]
    from grid.train.__main__ import main as train_main

    assert train_main([*argv, "--out", str(shards.parent / "t")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.match(rf"error: {path}: {problem}", err), err
    assert path.read_bytes() == before and not (shards.parent / "t").exists()
    faults.record(survived=True)


def test_a_shard_larger_than_its_rows_allow_is_refused_before_it_is_read(shards, faults):
    path = shards / "test-0.parquet"
    path.write_bytes(path.read_bytes() + bytes(2 << 20))  # rows x 3 KB plus 2 MB of something else
    with pytest.raises(data.DataError, match=rf"^{path}: [\d,]+ bytes, more than the [\d,]+ it may hold$"):
        data.load(shards, val_size=5)
    faults.record(survived=True)
