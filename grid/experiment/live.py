"""The live display on a terminal (rich): a row per running training and the grid's status line under it.
Lines printed meanwhile (state changes) appear above it, through rich's redirection of stdout."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text


class LiveDisplay:
    def __init__(self, console: Console | None = None) -> None:
        self.live = Live(Text(""), console=console, refresh_per_second=2, transient=False)
        self.live.start()

    def show(self, rows: list[tuple[str, dict[str, Any], float | None]], status: str) -> None:
        """`rows`: (training id, its latest progress post, seconds left) of each running training."""
        self.live.update(render(rows, status))

    def stop(self) -> None:
        self.live.stop()


def render(rows: list[tuple[str, dict[str, Any], float | None]], status: str) -> Group:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("training", "", "epochs done", "step", "images/s", "test_acc", "ETA"):
        table.add_column(column, justify="left" if column in ("training", "") else "right")
    for name, u, left in rows:
        total = u["epochs"] * u["steps_per_epoch"]
        done = u["epoch"] * u["steps_per_epoch"] + u["step"]
        ips, acc = u.get("images_per_second"), u.get("test_acc")
        table.add_row(
            name,
            ProgressBar(total=total, completed=done, width=24),
            f"{u['epoch']}/{u['epochs']}",
            f"{u['step']}/{u['steps_per_epoch']}",
            f"{ips:,.0f}" if ips else "-",
            f"{acc:.4f}" if acc is not None else "-",
            "-" if left is None else f"{left / 60:.1f} min",
        )
    return Group(table, Text(status))
