"""The paper's outputs of a model: Kaggle-style `submission.csv`, a figure of 12 test predictions."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from grid.atomic import atomic_open


def write_submission(
    path: str | os.PathLike[str], ids: Sequence[str], predicted: Sequence[int], classes: Sequence[str]
) -> Path:
    """`id,label` rows, the label as its class name, in the test split's order."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "label"])
        writer.writerows((i, classes[p]) for i, p in zip(ids, predicted, strict=True))
    return Path(path)


def plot_predictions(
    path: str | os.PathLike[str],
    images: Tensor,
    predicted: Sequence[int],
    labels: Sequence[int],
    classes: Sequence[str],
    rows: int = 3,
    cols: int = 4,
) -> Path:
    """The first rows*cols `images` (uint8 [N, 3, H, W]) titled "predicted (true)", red where wrong."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot, no display, no globals

    fig = Figure(figsize=(2.0 * cols, 2.2 * rows))
    for k in range(min(rows * cols, images.shape[0])):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(images[k].permute(1, 2, 0).cpu().numpy())
        color = "black" if predicted[k] == labels[k] else "red"
        ax.set_title(f"{classes[predicted[k]]} ({classes[labels[k]]})", fontsize=9, color=color)
        ax.axis("off")
    fig.suptitle("predicted (true)", fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return Path(path)
