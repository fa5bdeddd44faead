"""The grid's figures: test accuracy vs epochs (with the published values) and train vs validation loss.

Figures are plain matplotlib `Figure`s (no pyplot: no global state, no GUI backend, nothing to close),
rendered by Agg into memory and written atomically as PNGs under RUN_DIR/plots/.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from grid import atomic
from grid.report import published, verdict
from grid.report.tables import cell_stats

LOSS_PANELS_PER_FIGURE = 12  # 4 rows x 3: one readable PNG per 12 trainings


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return atomic.write_bytes(path, buf.getvalue())


def plot_accuracy(results: pd.DataFrame, path: str | Path) -> Path:
    """Test accuracy vs epochs, one colour per arch/activation(/recipe): solid = measured as published
    (band: ± std over seeds), dashed = eval mode, diamonds = the paper's values."""
    stats = cell_stats(results)
    recipes = sorted(set(stats["recipe"]))
    fig = Figure(figsize=(10, 5.5))
    ax = fig.subplots()
    colors = matplotlib.colormaps["tab10"].colors
    handles = []  # one legend entry per model (its colour) plus the three line styles
    groups = stats.groupby(["arch", "activation", "recipe"], sort=True)
    for i, ((arch, act, recipe), g) in enumerate(groups):
        color = colors[i % len(colors)]
        g = g.sort_values("epochs")
        # Cells without an ok seed are NaN: matplotlib leaves a gap rather than a misleading line.
        (line,) = ax.plot(g["epochs"], g["ours"], "-o", ms=3, color=color)
        ax.plot(g["epochs"], g["eval"], "--", color=color, alpha=0.8)
        if g["seeds"].max() > 1:
            std = g["ours_std"].fillna(0)
            ax.fill_between(g["epochs"], g["ours"] - std, g["ours"] + std, color=color, alpha=0.15, lw=0)
        pubs = [(p.epochs, p.accuracy) for p in published.PUBLISHED if (p.arch, p.activation) == (arch, act)]
        if pubs:
            ax.plot(*zip(*pubs, strict=True), "D", ms=9, color=color, mec="black", ls="none")
        line.set_label(f"{arch} {act}" + (f" [{recipe}]" if len(recipes) > 1 else ""))
        handles.append(line)
    handles += [
        Line2D([], [], color="grey", ls="-", marker="o", ms=3, label="measured as published"),
        Line2D([], [], color="grey", ls="--", label="eval mode"),
        Line2D([], [], color="grey", ls="none", marker="D", mec="black", label="paper"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_xlabel("training epochs")
    ax.set_ylabel("test accuracy")
    ax.set_title("Test accuracy vs epochs")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, Path(path))


def plot_verdict(v: verdict.Verdict, path: str | Path) -> Path:
    """Published (x) against ours (y) for every published cell with a result: seed std as error bars, the
    diagonal and its ±TOLERANCE band; green = consistent under verdict.RULE, red = not."""
    fig = Figure(figsize=(5.5, 5.5))
    ax = fig.subplots()
    shown = [c for c in v.comparisons if c.status in ("consistent", "not consistent")]
    values = [x for c in shown for x in (c.published, c.ours)]
    lo, hi = min([0.45, *values]) - 0.02, max([0.85, *values]) + 0.02  # every point inside the frame
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
    t = verdict.TOLERANCE
    ax.fill_between([lo, hi], [lo - t, hi - t], [lo + t, hi + t], color="grey", alpha=0.15, lw=0)
    for c in shown:
        color = "tab:green" if c.status == "consistent" else "tab:red"
        err = 0.0 if math.isnan(c.std) else c.std
        ax.errorbar(c.published, c.ours, yerr=err, fmt="o", color=color, capsize=4, ms=6)
        ax.annotate(
            f"{c.arch} {c.activation} @{c.epochs} (n={c.n})",
            (c.published, c.ours),
            fontsize=7,
            xytext=(5, -10),
            textcoords="offset points",
        )
    if not shown:
        ax.text(0.5, 0.5, "no published cell has a result in this grid", ha="center", transform=ax.transAxes)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("published test accuracy")
    ax.set_ylabel("ours (as published; bars: ± std over seeds)")
    ax.set_title(f"Published vs ours (band: ±{t:g})", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, Path(path))


def _loss_panel(ax: Axes, h: pd.DataFrame, title: str) -> None:
    h = h.sort_values("epoch")
    ax.plot(h["epoch"], h["train_loss"], label="train")
    ax.plot(h["epoch"], h["val_loss"], label="validation")
    val = h["val_loss"].astype(float)
    if val.notna().any():  # where validation loss bottoms out: from there on the model overfits
        best = h.loc[val.idxmin(), "epoch"]
        ax.axvline(best, color="grey", ls=":", lw=1)
    ax.set_title(title, fontsize=7)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def _describe(row: pd.Series) -> str:
    return " ".join(
        f"{k} {row[k]}" if k == "seed" else str(row[k])
        for k in ("arch", "activation", "recipe", "seed")
        if k in row.index
    )


def plot_losses(history: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Train vs validation loss per training, one panel each, 12 panels per PNG (losses.png, losses_2.png...).
    A dotted line marks the epoch of lowest validation loss."""
    out_dir = Path(out_dir)
    for old in out_dir.glob("losses*.png"):  # a rebuild with fewer trainings must not keep stale pages
        old.unlink()
    trainings = list(history.groupby("training_id", sort=True))
    paths = []
    for page, start in enumerate(range(0, len(trainings), LOSS_PANELS_PER_FIGURE), 1):
        chunk = trainings[start : start + LOSS_PANELS_PER_FIGURE]
        ncols = min(3, len(chunk))
        nrows = math.ceil(len(chunk) / ncols)
        fig = Figure(figsize=(4 * ncols, 2.8 * nrows))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, (tid, h) in zip(axes.flat, chunk, strict=False):
            _loss_panel(ax, h, f"{_describe(h.iloc[0])}\n{tid}")
        for ax in list(axes.flat)[len(chunk) :]:
            ax.set_visible(False)
        axes.flat[0].legend(fontsize=7)
        fig.supxlabel("epoch", fontsize=8)
        fig.supylabel("cross-entropy loss", fontsize=8)
        fig.tight_layout()
        paths.append(_save(fig, out_dir / ("losses.png" if page == 1 else f"losses_{page}.png")))
    return paths


def write_plots(results: pd.DataFrame, history: pd.DataFrame | None, run_dir: str | Path) -> list[Path]:
    """Every figure of the run under RUN_DIR/plots/; loss plots only when there is a history."""
    out = Path(run_dir) / "plots"
    paths = [plot_verdict(verdict.verdict(results), out / "verdict.png"), plot_accuracy(results, out / "accuracy.png")]
    if history is not None and not history.empty:
        paths += plot_losses(history, out)
    return paths
