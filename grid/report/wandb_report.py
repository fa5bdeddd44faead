"""The grid's review report on W&B: the verdict and its plot first, then the accuracy and loss curves of its
runs (seeds of a cell as one line with a std band) and the paper's four tables.

    python -m grid.report.wandb_report push RUN_DIR/wandb_report.json   # save a report written offline

`publish(run_dir, project, entity)` describes the report as a small JSON-able spec, then, online, builds
it with wandb-workspaces and saves it (returning its URL). Offline, or when saving fails, the spec goes to
RUN_DIR/wandb_report.json (returning that path) for `push` later: turning a report with run sets into its
saved form asks the W&B API for the project's id, so only that last step needs the network.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grid.report import tables as paper_tables
from grid.report import verdict as verdicts
from grid.report.html import ReportError, load_run
from grid.wandb_settings import WandbSettings, redact, resolved_mode

log = logging.getLogger(__name__)

SPEC_FILE = "wandb_report.json"
PAPER_TABLES = tuple(s.name for s in paper_tables.PAPER_TABLES)  # grid.report.tables writes tables/<name>.md
GROUP_BY = ("config.arch", "config.activation", "config.recipe")  # seeds of a cell form one line
MEDIA = ("verdict_plot", "accuracy_plot")  # logged by the grid's results run (grid.experiment.wandb_results)


@dataclass(frozen=True)
class PanelSpec:
    title: str
    y: tuple[str, ...]
    x: str = "epoch"


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec("Test accuracy (eval mode) vs epoch", ("test_acc",)),
    PanelSpec("Test accuracy as published (train mode, batches of 32) vs epoch", ("test_acc_as_published",)),
    PanelSpec("Validation accuracy vs epoch", ("val_acc",)),
    PanelSpec("Train vs validation loss", ("train_loss", "val_loss")),
)


def _grid_name(run_dir: Path) -> str:
    try:
        return str(json.loads((run_dir / "grid.json").read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return run_dir.name  # runs/NAME


def _tables(run_dir: Path) -> tuple[list[dict[str, str]], list[str]]:
    """([{name, markdown}] of the paper's tables that grid.report.tables wrote, notes on those missing)."""
    found, notes = [], []
    for name in PAPER_TABLES:
        path = run_dir / "tables" / f"{name}.md"
        if path.is_file():
            found.append({"name": name, "markdown": path.read_text()})
        else:
            notes.append(
                f"{name}: not in {run_dir / 'tables'} (not in this grid, or "
                f"`python -m grid.report {run_dir}` has not run)"
            )
    return found, notes


def _verdict(run_dir: Path) -> str:
    try:
        results, _, spec = load_run(run_dir)
    except ReportError as e:
        return f"No verdict: {e}"
    return verdicts.to_markdown(verdicts.verdict(results, spec))


def report_spec(run_dir: Path, project: str, entity: str | None) -> dict[str, Any]:
    """The report as plain data: everything `build_report` needs, nothing that needs the network."""
    run_dir = Path(run_dir)
    group = _grid_name(run_dir)
    tables, notes = _tables(run_dir)
    return {
        "verdict": _verdict(run_dir),
        "results_run": f"{group}-results",
        "media": list(MEDIA),
        "title": f"cifar-grid: {group}"[:128],
        "description": "Reproduction of the paper's CIFAR-10 grid (architecture x activation x epochs). "
        "Lines: one per architecture/activation/recipe, mean over seeds with a ± std band.",
        "project": project,
        "entity": entity,
        "group": group,
        "groupby": list(GROUP_BY),
        "panels": [asdict(p) for p in PANELS],
        "tables": tables,
        "notes": notes,
    }


def build_report(spec: dict[str, Any], entity: str) -> Any:
    """The `wandb_workspaces.reports.v2.Report` of a spec; builds offline, saving needs the network."""
    import wandb_workspaces.reports.v2 as wr  # here: importing it imports wandb (seconds)

    runset = wr.Runset(
        entity=entity,
        project=spec["project"],
        name=spec["group"],
        filters=f"Group = '{spec['group']}' and JobType = 'train'",
        groupby=list(spec["groupby"]),
    )
    results = wr.Runset(
        entity=entity, project=spec["project"], name="results", filters=f"Name = '{spec['results_run']}'"
    )
    panels = [
        wr.LinePlot(
            title=p["title"],
            x=p["x"],
            y=list(p["y"]),
            title_x=p["x"],
            groupby_aggfunc="mean",
            groupby_rangefunc="stddev",
        )
        for p in spec["panels"]
    ]
    media = wr.MediaBrowser(title="Published vs ours; accuracy by epochs", media_keys=list(spec["media"]))
    blocks: list[Any] = [
        wr.H1("Verdict: did it reproduce the paper?"),
        wr.MarkdownBlock(text=spec["verdict"]),
        wr.PanelGrid(runsets=[results], panels=[media]),
        wr.H1("Accuracy and loss per epoch (mean over seeds, band: ± std)"),
        wr.PanelGrid(runsets=[runset], panels=panels),
        wr.H1("The paper's tables"),
    ]
    blocks += [wr.MarkdownBlock(text=t["markdown"]) for t in spec["tables"]]
    blocks += [wr.MarkdownBlock(text="\n".join(f"- {n}" for n in spec["notes"]))] if spec["notes"] else []
    return wr.Report(
        project=spec["project"], entity=entity, title=spec["title"], description=spec["description"], blocks=blocks
    )


def push(spec: dict[str, Any]) -> str:
    """Saves the report on W&B (the spec's entity, else the API key's default one); returns its URL."""
    import wandb

    entity = spec["entity"] or wandb.Api().default_entity
    report = build_report(spec, entity)
    report.save()
    return str(report.url)


def write_spec(run_dir: Path, spec: dict[str, Any]) -> Path:
    path = Path(run_dir) / SPEC_FILE
    path.write_text(json.dumps(spec, indent=1) + "\n")
    return path


def publish(run_dir: Path, project: str | None, entity: str | None, online: bool = True) -> str:
    """The report's URL when saved on W&B; otherwise (offline, `online` False because the grid's runs could
    not reach W&B, or saving failed) the written spec's path."""
    run_dir = Path(run_dir)
    settings = WandbSettings(project=project or WandbSettings.project, entity=entity)
    spec = report_spec(run_dir, settings.project, settings.entity)
    if online and resolved_mode(settings) == "online":
        try:
            return push(spec)
        except Exception as e:  # noqa: BLE001 - the spec below keeps the report for a later push
            log.warning(
                "W&B report not saved (%s: %s); writing its spec instead",
                type(e).__name__,
                redact(str(e)).split("\n")[0],
            )
    path = write_spec(run_dir, spec)
    log.info("W&B report spec written to %s; save it with `python -m grid.report.wandb_report push %s`", path, path)
    return str(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m grid.report.wandb_report", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("push", help="save a report written offline").add_argument("spec", type=Path)
    args = p.parse_args(argv)
    print(push(json.loads(args.spec.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
