"""The test accuracies the paper publishes (docs: shared/docs/paper-protocol.md, "Results the paper reports").

Only values with an epoch count are rows; everything else the paper says about a table (a value in a figure
only, a notebook run without an epoch count) is kept as a note, so that nothing is compared against a guess.
Every (arch, activation, epochs) appears at most once, so a value can be looked up without its table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd


@dataclass(frozen=True)
class Published:
    table: str  # "3-1" .. "3-4"
    arch: str
    activation: str
    epochs: int
    accuracy: float  # test accuracy, a fraction; printed with the paper's own digits (0.61 stays 0.61)
    note: str  # where the number comes from


@dataclass(frozen=True)
class PublishedNote:
    table: str
    arch: str
    activation: str
    note: str


PUBLISHED: tuple[Published, ...] = (
    Published("3-1", "baseline", "relu", 100, 0.5797, "notebook run (ImageNet Classification.ipynb), 100 epochs"),
    Published(
        "3-2",
        "baseline",
        "leaky_relu",
        10,
        0.61,
        "text, §3.2.4: 'achieving 0.61 accuracy after only 10 epochs' (two digits only)",
    ),
    Published(
        "3-2", "baseline", "swish", 100, 0.5985, "notebook run (ImageNet Classification_Swish.ipynb), 100 epochs"
    ),
    Published(
        "3-3",
        "improved",
        "relu",
        10,
        0.6856,
        "derived from the text, §3.2.6: ResNet-18's 0.7088 at 10 epochs is "
        "'a 0.0232 improvement over the improved model', so 0.7088 - 0.0232",
    ),
    Published("3-3", "improved", "relu", 100, 0.7509, "text, §3.2.5 and abstract: 0.7509 after 100 epochs"),
    Published("3-4", "resnet18", "relu", 10, 0.7088, "text, §3.2.6: 0.7088 after 10 epochs"),
)

NOTES: tuple[PublishedNote, ...] = (
    PublishedNote(
        "3-1",
        "baseline",
        "relu",
        "the text says accuracy peaks at 30 epochs (§3.2.3); that value is in the paper's figure only",
    ),
    PublishedNote(
        "3-2",
        "baseline",
        "leaky_relu",
        "a notebook run reports 0.5853 without an epoch count, so it is not compared here",
    ),
    PublishedNote(
        "3-2", "baseline", "swish", "the text says accuracy falls with more epochs for every activation (§3.2.4)"
    ),
    PublishedNote(
        "3-3",
        "improved",
        "relu",
        "the published 100-epoch value was measured with dropout active (the notebooks never call net.eval())",
    ),
    PublishedNote("3-4", "resnet18", "relu", "the paper trained ResNet-18 for 10 epochs only (hardware limits)"),
)

_BY_KEY = {(p.arch, p.activation, p.epochs): p for p in PUBLISHED}
assert len(_BY_KEY) == len(PUBLISHED), "one published value per (arch, activation, epochs)"


def lookup(arch: str, activation: str, epochs: int) -> Published | None:
    return _BY_KEY.get((arch, activation, int(epochs)))


def value(arch: str, activation: str, epochs: int) -> float:
    """The published accuracy, or NaN when the paper gives none for this cell."""
    p = lookup(arch, activation, epochs)
    return p.accuracy if p else float("nan")


def notes_for(arch: str, activation: str) -> list[str]:
    """Every note about one model: the published values' sources, then the values without an epoch count."""
    rows = [
        f"{p.epochs} epochs = {p.accuracy:g}: {p.note}"
        for p in PUBLISHED
        if (p.arch, p.activation) == (arch, activation)
    ]
    return rows + [n.note for n in NOTES if (n.arch, n.activation) == (arch, activation)]


def as_frame() -> pd.DataFrame:
    """The published values, one row each: table, arch, activation, epochs, accuracy, note."""
    return pd.DataFrame([asdict(p) for p in PUBLISHED])
