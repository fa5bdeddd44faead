"""load: split sizes, the paper's random_split, stratified subsets; resolve_shards' one-time prepare."""

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import random_split

import data
from data.load import stratified_subset
from tests.fixtures_data import synthetic, tar_folder, write_imagefolder, write_official

DATA = synthetic(n_train=200, n_test=100, seed=1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("load")
    data.prepare(write_official(root / "src", DATA), root / "shards")
    return root / "shards"


def test_splits_types_and_sizes(shards):
    loaded = data.load(shards, val_size=50)
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (150, 50, 100)
    assert loaded.classes == data.CLASSES and loaded.uri == str(shards)
    for split in (loaded.train, loaded.val, loaded.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 32, 32)
        assert split.labels.dtype == torch.int64 and split.images.device.type == "cpu"
        assert len(split.ids) == len(split.labels) == len(split.images)


@pytest.mark.parametrize("split_seed", [0, 1])
def test_validation_is_random_splits_indices(shards, split_seed):
    loaded = data.load(shards, val_size=50, split_seed=split_seed)
    train_part, val_part = random_split(range(200), [150, 50], generator=torch.Generator().manual_seed(split_seed))
    assert loaded.train.ids == [f"train/{k + 1:05d}" for k in train_part.indices]
    assert loaded.val.ids == [f"train/{k + 1:05d}" for k in val_part.indices]
    assert loaded.test.ids == [f"test/{k:05d}" for k in range(1, 101)]
    # Each row's image and label are the ones written for its id.
    rows = np.array(val_part.indices)
    assert np.array_equal(loaded.val.images.reshape(50, 3072).numpy(), DATA.train_pixels[rows])
    assert np.array_equal(loaded.val.labels.numpy(), DATA.train_labels[rows])


def test_val_size_larger_than_train_is_refused(shards):
    with pytest.raises(ValueError, match="val_size=201"):
        data.load(shards, val_size=201)


def test_max_images_take_stratified_seeded_subsets(shards):
    full = data.load(shards, val_size=50)
    small = data.load(shards, val_size=50, max_train_images=30, max_eval_images=20)
    assert (len(small.train), len(small.val), len(small.test)) == (30, 20, 20)
    assert set(small.train.ids) <= set(full.train.ids) and set(small.val.ids) <= set(full.val.ids)
    assert np.bincount(small.test.labels.numpy(), minlength=10).tolist() == [2] * 10  # 10 per class in test
    again = data.load(shards, val_size=50, max_train_images=30, max_eval_images=20)
    other = data.load(shards, val_size=50, max_train_images=30, max_eval_images=20, subset_seed=1)
    assert again.train.ids == small.train.ids and other.train.ids != small.train.ids
    assert torch.equal(again.train.images, small.train.images)


def test_stratified_subset_keeps_class_proportions():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    rows = stratified_subset(labels, 10, seed=0)
    assert rows.tolist() == sorted(set(rows.tolist())) and len(rows) == 10
    assert np.bincount(labels[rows]).tolist() == [5, 3, 2]
    uneven = stratified_subset(labels, 7, seed=3)  # 3.5, 2.1, 1.4 -> 4, 2, 1: largest remainders first
    assert np.bincount(labels[uneven]).tolist() == [4, 2, 1]
    assert stratified_subset(labels, None, seed=0).tolist() == list(range(100))
    assert stratified_subset(labels, 1000, seed=0).tolist() == list(range(100))


# --- resolve_shards -------------------------------------------------------------------------------------


def test_resolve_shards_returns_shard_locations_as_they_are(shards, tmp_path):
    assert data.resolve_shards(str(shards), tmp_path) == str(shards)
    assert data.resolve_shards("s3://bucket/cifar", tmp_path) == "s3://bucket/cifar"
    assert list(tmp_path.iterdir()) == []


def test_resolve_shards_prepares_a_source_once_even_when_called_concurrently(tmp_path):
    source = tar_folder(write_imagefolder(tmp_path / "tree", synthetic()), tmp_path / "tree.tar")
    cache = tmp_path / "cache"
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(data.resolve_shards(str(source), cache))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and len(set(results)) == 1
    dest = Path(results[0])
    assert dest.parent == cache / "shards" and len(dest.name) == 16
    manifest_time = (dest / "manifest.json").stat().st_mtime_ns
    assert data.resolve_shards(str(source), cache) == str(dest)
    assert (dest / "manifest.json").stat().st_mtime_ns == manifest_time  # reused, not prepared again
    assert len(data.load(dest, val_size=5).train) == 15
    assert sorted(p.name for p in (cache / "shards").iterdir()) == [dest.name, f"{dest.name}.lock"]


def test_resolve_shards_of_a_missing_source(tmp_path):
    with pytest.raises(data.DataError, match=rf"^{tmp_path / 'nope.tar'}: does not exist$"):
        data.resolve_shards(str(tmp_path / "nope.tar"), tmp_path / "cache")
