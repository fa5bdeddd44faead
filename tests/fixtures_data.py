"""Synthetic CIFAR-10 data in each real on-disk format, for the data tests (and anyone else's).

Every writer takes a ``Synthetic`` set (random pixels, every class present) and writes it in one format:
the official python batches (Python 2 pickles, as CIFAR ships them), the Kaggle PNG + CSV layout, and
image-folder trees; ``tar_folder`` packs any of them.
"""

import csv
import pickle
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from data.download import shared_jpeg_copy

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SHARED_JPEG_TAR = shared_jpeg_copy()  # $CIFAR_GRID_SHARED_DATA, else ../shared/data/cifar10-jpeg.tar.gz


@dataclass(frozen=True)
class Synthetic:
    train_pixels: np.ndarray  # uint8 [N, 3072], CHW planar, in id order (train/00001 first)
    train_labels: np.ndarray  # int64 [N]
    test_pixels: np.ndarray
    test_labels: np.ndarray


def synthetic(n_train: int = 20, n_test: int = 10, seed: int = 0) -> Synthetic:
    """Random images; labels cycle through the classes (shuffled), so every class appears."""
    rng = np.random.default_rng(seed)

    def labels(n: int) -> np.ndarray:
        return rng.permutation(np.arange(n) % len(CLASSES))

    return Synthetic(
        rng.integers(0, 256, (n_train, 3072), dtype=np.uint8),
        labels(n_train),
        rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
        labels(n_test),
    )


def to_image(pixels: np.ndarray) -> Image.Image:
    """A 32x32 RGB PIL image from one CHW planar row."""
    return Image.fromarray(pixels.reshape(3, 32, 32).transpose(1, 2, 0), "RGB")


# --- official python batches -------------------------------------------------------------------------


class _Python2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for CIFAR: str as BINSTRING, numpy globals under numpy.core."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_string(self, obj: bytes | str) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_string
    dispatch[str] = save_string

    def save_global(self, obj: object, name: str | None = None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")  # numpy 1 names, as in CIFAR's files
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def python2_pickle(obj: object) -> bytes:
    import io

    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def batch_pickle(pixels: np.ndarray, labels: np.ndarray, name: str) -> bytes:
    return python2_pickle(
        {
            b"batch_label": name.encode(),
            b"labels": [int(x) for x in labels],
            b"data": np.ascontiguousarray(pixels, np.uint8),
            b"filenames": [f"img_{k}.png".encode() for k in range(len(labels))],
        }
    )


def write_official(folder: Path, data: Synthetic) -> Path:
    """``folder/cifar-10-batches-py/`` with data_batch_1..5 (train split in 5 parts), test_batch, batches.meta."""
    out = folder / "cifar-10-batches-py"
    out.mkdir(parents=True)
    parts = np.array_split(np.arange(len(data.train_labels)), 5)
    for k, rows in enumerate(parts, start=1):
        (out / f"data_batch_{k}").write_bytes(
            batch_pickle(data.train_pixels[rows], data.train_labels[rows], f"training batch {k} of 5")
        )
    (out / "test_batch").write_bytes(batch_pickle(data.test_pixels, data.test_labels, "testing batch 1 of 1"))
    meta = {b"num_cases_per_batch": len(parts[0]), b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}
    (out / "batches.meta").write_bytes(python2_pickle(meta))
    (out / "readme.html").write_text("<html>synthetic</html>")
    return out


# --- Kaggle layout and image folders ------------------------------------------------------------------


def write_kaggle(folder: Path, data: Synthetic, test_csv: str = "testLables.csv") -> Path:
    """``folder/train/<id>.png`` + trainLabels.csv and ``folder/test/<id>.png`` + ``test_csv``, ids from 1."""
    for split, pixels, labels, csv_name in (
        ("train", data.train_pixels, data.train_labels, "trainLabels.csv"),
        ("test", data.test_pixels, data.test_labels, test_csv),
    ):
        (folder / split).mkdir(parents=True)
        with open(folder / csv_name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "label"])
            for number, (row, label) in enumerate(zip(pixels, labels, strict=True), start=1):
                to_image(row).save(folder / split / f"{number}.png")
                writer.writerow([number, CLASSES[label]])
    return folder


def write_imagefolder(folder: Path, data: Synthetic, suffix: str = ".png") -> Path:
    """``folder/<split>/<class>/<k:04d><suffix>``; k counts within each split, in id order."""
    for split, pixels, labels in (
        ("train", data.train_pixels, data.train_labels),
        ("test", data.test_pixels, data.test_labels),
    ):
        for k, (row, label) in enumerate(zip(pixels, labels, strict=True)):
            path = folder / split / CLASSES[label] / f"{k:04d}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            to_image(row).save(path, quality=95) if suffix == ".jpg" else to_image(row).save(path)
    return folder


def imagefolder_order(data: Synthetic, split: str, suffix: str = ".png") -> tuple[list[str], np.ndarray]:
    """The ids (sorted) and the matching row positions that ``write_imagefolder`` gives a split."""
    labels = data.train_labels if split == "train" else data.test_labels
    ids = [f"{split}/{CLASSES[label]}/{k:04d}{suffix}" for k, label in enumerate(labels)]
    order = np.argsort(ids, kind="stable")
    return [ids[k] for k in order], order


def tar_folder(folder: Path, tar_path: Path, arcname: str | None = None) -> Path:
    """Pack ``folder`` into ``tar_path`` (.tar or .tar.gz), under ``arcname`` (default: the folder's name)."""
    mode = "w:gz" if tar_path.name.endswith(".gz") else "w"
    with tarfile.open(tar_path, mode) as tar:
        tar.add(folder, arcname=arcname if arcname is not None else folder.name)
    return tar_path


def add_tar_member(
    tar_path: Path, name: str, payload: bytes = b"x", kind: bytes = tarfile.REGTYPE, linkname: str = ""
) -> Path:
    """A plain .tar holding one member of any kind (links, absolute or ``..`` paths), for hostile archives."""
    import io

    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        info.size = len(payload) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(payload) if kind == tarfile.REGTYPE else None)
    return tar_path
