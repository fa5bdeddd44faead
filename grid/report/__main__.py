"""`python -m grid.report RUN [RUN ...] [--out DIR] [--wandb [--wandb-project P] [--wandb-entity E]]`: rebuild a
run folder's tables, plots and report.html from its files, or combine several runs (seeds trained apart) into
DIR; with --wandb, also the W&B report."""

from __future__ import annotations

import sys
from pathlib import Path

from grid.report import tables, verdict
from grid.report.combine import combine
from grid.report.html import ReportError, build, load_run
from grid.settings import Parser, UsageError


def main(argv: list[str] | None = None) -> int:
    p = Parser(
        prog="python -m grid.report",
        description="Rebuild a run folder's tables, plots and report.html, or combine several runs into one.",
    )
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders (runs/NAME)")
    p.add_argument(
        "--out",
        type=Path,
        help="write the report into this folder (needed to combine several runs: their seeds and cells as one "
        "grid, refused where their protocol or data differ)",
    )
    p.add_argument("--wandb", action="store_true", help="also publish the report to Weights & Biases")
    p.add_argument("--wandb-project", help="W&B project (with --wandb)")
    p.add_argument("--wandb-entity", help="W&B entity (with --wandb)")
    try:
        args = p.parse_args(argv)
        if (args.wandb_project or args.wandb_entity) and not args.wandb:
            p.error("--wandb-project / --wandb-entity need --wandb")
        if len(args.runs) > 1 and args.out is None:
            p.error("several runs combine into a folder of their own: give --out DIR")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    folder = args.out or args.runs[0]
    try:
        if args.out is None:
            results, history, spec = load_run(folder)
            path = build(folder, results, history, spec)
        else:
            results, spec, path = combine(args.runs, args.out)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(tables.tables_markdown(results))
    print(f"wrote {path}, {folder / 'tables'}/, {folder / 'plots'}/")
    print("\n" + verdict.to_markdown(verdict.verdict(results, spec)), end="")
    if args.wandb:
        from grid.report.wandb_report import publish  # only this branch needs wandb

        print(publish(folder, args.wandb_project, args.wandb_entity))
    return 0


if __name__ == "__main__":
    sys.exit(main())
