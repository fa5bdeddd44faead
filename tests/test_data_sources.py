"""Every source format reads to the same ids, labels and pixels as the images written into it."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data import images
from data.errors import DataError
from data.sources import read_source, source_sha256
from tests.fixtures_data import (
    imagefolder_order,
    synthetic,
    tar_folder,
    write_imagefolder,
    write_kaggle,
    write_official,
)

DATA = synthetic(n_train=20, n_test=10)
NUMBERED = {"train": [f"train/{k:05d}" for k in range(1, 21)], "test": [f"test/{k:05d}" for k in range(1, 11)]}


def assert_in_id_order(source, data=DATA):
    """Rows are the synthetic images in id order, ids train/00001.. as in the official and Kaggle layouts."""
    for split, pixels, labels in (
        ("train", data.train_pixels, data.train_labels),
        ("test", data.test_pixels, data.test_labels),
    ):
        records = source.splits[split]
        assert records.ids == NUMBERED[split]
        assert records.labels.dtype == np.int8 and np.array_equal(records.labels, labels)
        assert records.pixels.dtype == np.uint8 and np.array_equal(records.pixels, pixels)


def test_official_folder(tmp_path):
    folder = write_official(tmp_path, DATA)
    source = read_source(folder)
    assert source.kind == "official" and source.name == "cifar-10-batches-py"
    assert_in_id_order(source)


def test_official_archive_reads_like_its_folder(tmp_path):
    folder = write_official(tmp_path / "src", DATA)
    archive = tar_folder(folder, tmp_path / "cifar-10-python.tar.gz")
    source = read_source(archive)
    assert (source.kind, source.name) == ("official", "cifar-10-python.tar.gz")
    assert source.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert_in_id_order(source)


@pytest.mark.parametrize("test_csv", ["testLables.csv", "testLabels.csv"])
def test_kaggle_folder_gives_the_official_ids(tmp_path, test_csv):
    source = read_source(write_kaggle(tmp_path / "kaggle", DATA, test_csv=test_csv))
    assert source.kind == "kaggle"
    assert_in_id_order(source)


def test_kaggle_ids_sort_by_number_not_text(tmp_path):
    data = synthetic(n_train=12, n_test=10)  # ids 1..12: "10.png" sorts before "2.png" as text
    records = read_source(write_kaggle(tmp_path / "kaggle", data)).splits["train"]
    assert records.ids == [f"train/{k:05d}" for k in range(1, 13)]
    assert np.array_equal(records.pixels, data.train_pixels)


def assert_imagefolder(source, suffix=".png"):
    assert source.kind == "imagefolder"
    for split, pixels, labels in (
        ("train", DATA.train_pixels, DATA.train_labels),
        ("test", DATA.test_pixels, DATA.test_labels),
    ):
        ids, order = imagefolder_order(DATA, split, suffix)
        records = source.splits[split]
        assert records.ids == ids
        assert np.array_equal(records.labels, labels[order])
        if suffix == ".png":
            assert np.array_equal(records.pixels, pixels[order])


def test_imagefolder_folder(tmp_path):
    assert_imagefolder(read_source(write_imagefolder(tmp_path / "tree", DATA)))


@pytest.mark.parametrize("name", ["tree.tar", "tree.tar.gz"])
def test_imagefolder_tar_under_a_top_folder_reads_like_the_folder(tmp_path, name):
    folder = write_imagefolder(tmp_path / "cifar10-png", DATA)
    (folder / "README.md").write_text("ignored: outside train/ and test/")
    from_tar = read_source(tar_folder(folder, tmp_path / name))
    assert_imagefolder(from_tar)
    from_folder = read_source(folder)
    assert from_tar.splits["train"].ids == from_folder.splits["train"].ids


def test_imagefolder_tar_without_a_top_folder(tmp_path):
    folder = write_imagefolder(tmp_path / "tree", DATA)
    assert_imagefolder(read_source(tar_folder(folder, tmp_path / "flat.tar", arcname="")))


def test_jpeg_pixels_are_what_pil_decodes_in_chw_order(tmp_path):
    folder = write_imagefolder(tmp_path / "jpg", DATA, suffix=".jpg")
    source = read_source(folder)
    assert_imagefolder(source, suffix=".jpg")
    records = source.splits["test"]
    for row, image_id in enumerate(records.ids):
        hwc = np.asarray(Image.open(folder / image_id))
        assert np.array_equal(records.pixels[row].reshape(3, 32, 32), hwc.transpose(2, 0, 1))


def test_decoding_in_worker_processes_keeps_order_and_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_CHUNK", 3)  # 20 train images: 7 chunks over 2 forked workers
    folder = write_imagefolder(tmp_path / "tree", DATA)
    assert_imagefolder(read_source(folder))
    Image.new("L", (32, 32)).save(folder / "train" / "truck" / "zz.png")
    with pytest.raises(DataError, match=r"train/truck/zz.png: not a 32x32 RGB image \(32x32 L\)$"):
        read_source(folder)


def test_a_folders_other_files_are_neither_read_nor_hashed(tmp_path, monkeypatch):
    folder = write_kaggle(tmp_path / "kaggle", DATA)
    before = source_sha256(folder)
    (folder / "train.7z").write_bytes(b"7z" * 1000)  # Kaggle ships these next to the extracted PNGs
    (folder / "sampleSubmission.csv").write_text("id,label\n")
    read = []
    original = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self.name) or original(self))
    source = read_source(folder)
    assert source.sha256 == before == source_sha256(folder)
    assert "train.7z" not in read and "sampleSubmission.csv" not in read and "1.png" in read
    (folder / "test" / "3.png").write_bytes((folder / "test" / "4.png").read_bytes())
    assert source_sha256(folder) != before  # ... but its images are
