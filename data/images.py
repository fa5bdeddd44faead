"""Decode 32x32 RGB image files (PNG or JPEG) to CIFAR's layout: 3072 bytes, R plane, G plane, B plane."""

import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

from data.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PIXELS = 3 * 32 * 32
# PIL, not torchvision.io: torchvision's image codecs are deprecated from 0.29 and warn on every call.
_FORMATS = ("PNG", "JPEG")  # also spares PIL from probing every other format's header
_CHUNK = 2_500  # images per pool task: big enough to amortise the pipe, small enough to balance 2 workers


def decode_pixels(contents: bytes | memoryview, where: str) -> np.ndarray:
    """The CHW uint8 pixels (shape [3072]) of an image file; a DataError unless it is a 32x32 RGB image."""
    try:
        with Image.open(io.BytesIO(contents), formats=_FORMATS) as image:
            if image.mode != "RGB" or image.size != (32, 32):
                size = "x".join(map(str, image.size))
                raise DataError(f"{where}: not a 32x32 RGB image ({size} {image.mode})")
            hwc = np.frombuffer(image.tobytes(), np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"{where}: not a readable PNG or JPEG image ({e})") from None
    return hwc.reshape(32, 32, 3).transpose(2, 0, 1).reshape(PIXELS)


def decode_many(files: list[tuple[str, bytes | memoryview]]) -> np.ndarray:
    """Pixels [N, 3072] of (where, contents) image files, in order; the first bad one raises its DataError.

    Large batches are decoded by 2 forked worker processes (PIL holds the GIL for most of a 32x32 decode).
    """
    workers = min(2, os.cpu_count() or 1)
    if len(files) < 2 * _CHUNK or workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return _decode_chunk(files)
    # Fork: workers start in milliseconds without re-importing torch; they only run PIL and numpy.
    chunks = [
        [(where, bytes(contents)) for where, contents in files[i : i + _CHUNK]] for i in range(0, len(files), _CHUNK)
    ]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return np.concatenate(list(pool.map(_decode_chunk, chunks)))


def _decode_chunk(files: list[tuple[str, bytes | memoryview]]) -> np.ndarray:
    pixels = np.empty((len(files), PIXELS), np.uint8)
    for row, (where, contents) in enumerate(files):
        pixels[row] = decode_pixels(contents, where)
    return pixels
