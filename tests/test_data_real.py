"""The real CIFAR-10 JPEG copy ($CIFAR_GRID_SHARED_DATA, default ../shared/data/cifar10-jpeg.tar.gz), end to end on a
slice of it."""

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

import data
from data.download import SHARED_COPY_ENV
from data.sources import read_source
from tests.fixtures_data import CLASSES, SHARED_JPEG_TAR

PER_CLASS = 6  # the first images of each class folder, in both splits

pytestmark = pytest.mark.skipif(
    not SHARED_JPEG_TAR.is_file(),
    reason=f"no shared JPEG copy at {SHARED_JPEG_TAR}: set {SHARED_COPY_ENV} to cifar10-jpeg.tar.gz",
)


@pytest.fixture(scope="module")
def real_slice(tmp_path_factory):
    """A .tar.gz cut from the real one: the same member names and bytes, PER_CLASS images per class folder."""
    out = tmp_path_factory.mktemp("real") / "cifar10-jpeg-slice.tar.gz"
    kept = {}
    with tarfile.open(SHARED_JPEG_TAR, "r|gz") as real, tarfile.open(out, "w:gz") as cut:
        for member in real:
            if member.isfile() and int(member.name.rsplit("/", 1)[1].split(".")[0]) < PER_CLASS:
                payload = real.extractfile(member).read()
                cut.addfile(member, io.BytesIO(payload))
                kept[member.name] = payload
    return out, kept


def test_slice_reads_with_the_real_names_labels_and_pixels(real_slice):
    archive, kept = real_slice
    source = read_source(archive)
    assert source.kind == "imagefolder"
    for split in ("train", "test"):
        records = source.splits[split]
        assert records.ids == sorted(f"{split}/{c}/{k:04d}.jpg" for c in CLASSES for k in range(PER_CLASS))
        assert np.bincount(records.labels, minlength=10).tolist() == [PER_CLASS] * 10
        for row in (0, len(records.ids) - 1):
            hwc = np.asarray(Image.open(io.BytesIO(kept[f"cifar10-jpeg/{records.ids[row]}"])))
            assert hwc.shape == (32, 32, 3)
            assert np.array_equal(records.pixels[row].reshape(3, 32, 32), hwc.transpose(2, 0, 1))
            assert CLASSES[records.labels[row]] == records.ids[row].split("/")[1]


def test_slice_prepares_and_loads(real_slice, tmp_path):
    archive, _ = real_slice
    manifest = data.prepare(archive, tmp_path / "shards")
    assert manifest["splits"] == {"train": 10 * PER_CLASS, "test": 10 * PER_CLASS}
    loaded = data.load(tmp_path / "shards", val_size=12, max_eval_images=10)
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (48, 10, 10)
    assert loaded.test.labels.bincount(minlength=10).tolist() == [1] * 10
    # Real photos, not noise: neighbouring pixels are strongly correlated.
    image = loaded.train.images[0].float()
    assert (image[:, :, 1:] - image[:, :, :-1]).abs().mean() < 40


@pytest.mark.slow
def test_whole_copy_gives_cifar10s_sizes(tmp_path):
    manifest = data.prepare(SHARED_JPEG_TAR, tmp_path / "shards")
    assert manifest["splits"] == {"train": 50_000, "test": 10_000}
    loaded = data.load(tmp_path / "shards")
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (40_000, 10_000, 10_000)
    train_and_val = np.concatenate([loaded.train.labels.numpy(), loaded.val.labels.numpy()])
    assert np.bincount(train_and_val).tolist() == [5000] * 10
    assert np.bincount(loaded.test.labels.numpy()).tolist() == [1000] * 10
