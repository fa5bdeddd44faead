"""`python -m grid.report RUN_DIR [--wandb [--wandb-project P] [--wandb-entity E]]`: rebuild a run folder's
tables, plots and report.html from its files; with --wandb, also its W&B report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grid.report import tables
from grid.report.html import ReportError, build, load_run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m grid.report", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("run_dir", type=Path, help="the run folder (runs/NAME)")
    p.add_argument("--wandb", action="store_true", help="also publish the report to Weights & Biases")
    p.add_argument("--wandb-project", help="W&B project (with --wandb)")
    p.add_argument("--wandb-entity", help="W&B entity (with --wandb)")
    args = p.parse_args(argv)
    if (args.wandb_project or args.wandb_entity) and not args.wandb:
        p.error("--wandb-project / --wandb-entity need --wandb")
    try:
        results, history, spec = load_run(args.run_dir)
        path = build(args.run_dir, results, history, spec)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(tables.tables_markdown(results))
    print(f"wrote {path}, {args.run_dir / 'tables'}/, {args.run_dir / 'plots'}/")
    if args.wandb:
        from grid.report.wandb_report import publish  # only this branch needs wandb

        print(publish(args.run_dir, args.wandb_project, args.wandb_entity))
    return 0


if __name__ == "__main__":
    sys.exit(main())
