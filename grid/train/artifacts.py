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
    """The first rows*cols `images` (uint8 [N, 3, H, W]) captioned "predicted (true)", red where wrong.

    Drawn with PIL, not matplotlib: every training writes one at its end, and matplotlib's import and layout
    would add to every Ray worker's fixed cost (docs/design.md, "Measured choices")."""
    from PIL import Image, ImageDraw, ImageFont

    scale, tile_w, caption_h, title_h = 4, 168, 22, 28
    n = min(rows * cols, images.shape[0])
    side = images.shape[-1] * scale
    sheet = Image.new("RGB", (cols * tile_w, title_h + rows * (side + caption_h + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    draw.text((sheet.width / 2, title_h / 2), "predicted (true)", fill="black", font=font, anchor="mm")
    pixels = images[:n].permute(0, 2, 3, 1).cpu().numpy()
    for k in range(n):
        x, y = (k % cols) * tile_w, title_h + (k // cols) * (side + caption_h + 6)
        tile = Image.fromarray(pixels[k]).resize((side, side), Image.Resampling.NEAREST)
        sheet.paste(tile, (x + (tile_w - side) // 2, y))
        color = "black" if predicted[k] == labels[k] else "red"
        caption = f"{classes[predicted[k]]} ({classes[labels[k]]})"
        draw.text((x + tile_w / 2, y + side + caption_h / 2), caption, fill=color, font=font, anchor="mm")
    with atomic_open(path, "wb") as f:
        sheet.save(f, format="PNG")
    return Path(path)
