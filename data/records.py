"""The in-memory form of one split between reading a source and writing shards."""

from collections import Counter
from dataclasses import dataclass

import numpy as np

from data.classes import CLASSES
from data.errors import DataError
from data.images import PIXELS


@dataclass(frozen=True)
class Records:
    """One split's images in shard row order."""

    ids: list[str]
    labels: np.ndarray  # int8 [N], 0..9
    pixels: np.ndarray  # uint8 [N, 3072], CHW planar

    def check(self, where: str, split: str) -> None:
        """Refuse an empty split, duplicate ids, bad labels or mismatched lengths."""
        n = len(self.ids)
        if n == 0:
            raise DataError(f"{where}: the {split} split is empty")
        if len(set(self.ids)) != n:
            duplicate = next(i for i, count in Counter(self.ids).items() if count > 1)
            raise DataError(f"{where}: duplicate id {duplicate} in the {split} split")
        if self.labels.shape != (n,) or self.pixels.shape != (n, PIXELS) or self.pixels.dtype != np.uint8:
            raise DataError(
                f"{where}: {split} split has {n} ids but labels {self.labels.shape}, "
                f"pixels {self.pixels.shape} {self.pixels.dtype}"
            )
        if self.labels.min() < 0 or self.labels.max() >= len(CLASSES):
            raise DataError(f"{where}: {split} label outside 0..9 ({self.labels.min()}..{self.labels.max()})")
